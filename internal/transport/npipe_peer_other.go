//go:build unix && !linux && !darwin && !freebsd

package transport

import "net"

// peerOf names the process at the other end of c; this system's peer
// credentials are not read.
func peerOf(*net.UnixConn) string { return "local pipe client" }
