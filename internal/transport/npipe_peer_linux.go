package transport

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerOf names the process at the other end of c from its credentials
// (SO_PEERCRED), or says it is a local pipe client.
func peerOf(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return "local pipe client"
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return "local pipe client"
	}
	return fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
}
