//go:build !linux

package logx

import "net"

// peerCred is empty: this system's peer credentials are not read.
func peerCred(*net.UnixConn) string { return "" }
