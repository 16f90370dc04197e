package logx

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred is "uid U pid P" of the process at the other end of c
// (SO_PEERCRED), or "" when it cannot be read.
func peerCred(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return ""
	}
	return fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
}
