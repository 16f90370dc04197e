//go:build linux

package discovery

import (
	"context"
	"net"
	"syscall"

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
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	}); err != nil {
		return err
	}
	return serr
}

// listenMulticastSender opens an ephemeral UDP socket whose multicast
// datagrams leave through ifi.
func listenMulticastSender(ctx context.Context, ifi *net.Interface) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
