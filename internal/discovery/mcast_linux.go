//go:build linux

package discovery

import (
	"net"

	"golang.org/x/sys/unix"
)

// restrictToJoinedGroups sets IP_MULTICAST_ALL to 0, so that a socket
// joined to the multicast DNS group on one interface does not also receive
// the group's datagrams from other interfaces (Linux delivers them to every
// socket bound to the group address by default).
func restrictToJoinedGroups(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return controlSocket(rc, func(fd uintptr) error {
		return unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	})
}

// setMulticastSender makes multicast datagrams sent on fd leave through
// ifi (named by index) with a TTL of 255.
func setMulticastSender(fd uintptr, ifi *net.Interface) error {
	if err := unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}); err != nil {
		return err
	}
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255)
}
