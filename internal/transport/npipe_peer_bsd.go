//go:build darwin || freebsd

package transport

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerOf names the user at the other end of c from its credentials
// (LOCAL_PEERCRED), or says it is a local pipe client. The form "uid U"
// is what kdsrv's limits count a pipe client by.
func peerOf(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return "local pipe client"
	}
	var cred *unix.Xucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return "local pipe client"
	}
	return fmt.Sprintf("uid %d", cred.Uid)
}
