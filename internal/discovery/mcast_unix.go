//go:build unix && !linux

package discovery

import (
	"net"

	"golang.org/x/sys/unix"
)

// restrictToJoinedGroups is a no-op here: other Unix systems deliver a
// group's datagrams only to sockets bound to it.
func restrictToJoinedGroups(*net.UDPConn) error { return nil }

// setMulticastSender makes multicast datagrams sent on fd leave through
// ifi's first IPv4 address with a TTL of 255.
func setMulticastSender(fd uintptr, ifi *net.Interface) error {
	if err := unix.SetsockoptInet4Addr(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, firstIPv4(ifi)); err != nil {
		return err
	}
	return unix.SetsockoptByte(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255)
}
