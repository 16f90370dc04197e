// Package peercred names the process at the other end of a unix socket
// from the credentials the kernel records for it, for log lines and for
// per-client limits.
package peercred

import "net"

// Of is "uid U pid P" (Linux, SO_PEERCRED) or "uid U" (macOS and FreeBSD,
// LOCAL_PEERCRED) for the peer of c, or "" where the system gives no
// credentials or they cannot be read.
func Of(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var s string
	if err := raw.Control(func(fd uintptr) { s = read(fd) }); err != nil {
		return ""
	}
	return s
}
