package logx

import (
	"net"

	"kdsrv/internal/peercred"
)

// Peer names the far end of an accepted connection for log lines: its
// address, or, for a unix socket (whose clients have no address and
// would show as "@"), the peer's credentials where the system gives them
// (Linux: uid and pid; macOS and FreeBSD: uid) and the socket's path.
func Peer(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	local := "unix socket"
	if a := c.LocalAddr(); a != nil && a.String() != "" {
		local = "unix socket " + a.String()
	}
	if uc, ok := c.(*net.UnixConn); ok {
		if cred := peercred.Of(uc); cred != "" {
			return cred + " on " + local
		}
	}
	return "a client of " + local
}
