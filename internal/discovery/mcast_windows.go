//go:build windows

package discovery

import (
	"net"

	"golang.org/x/sys/windows"
)

// restrictToJoinedGroups is a no-op on Windows.
func restrictToJoinedGroups(*net.UDPConn) error { return nil }

// setMulticastSender makes multicast datagrams sent on fd leave through
// ifi's first IPv4 address with a TTL of 255.
func setMulticastSender(fd uintptr, ifi *net.Interface) error {
	h := windows.Handle(fd)
	if err := windows.SetsockoptInet4Addr(h, windows.IPPROTO_IP, windows.IP_MULTICAST_IF, firstIPv4(ifi)); err != nil {
		return err
	}
	return windows.SetsockoptInt(h, windows.IPPROTO_IP, windows.IP_MULTICAST_TTL, 255)
}
