//go:build unix && !linux

package discovery

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// restrictToJoinedGroups is a no-op here: other Unix systems deliver a
// group's datagrams only to sockets bound to it.
func restrictToJoinedGroups(*net.UDPConn) error { return nil }

// listenMulticastSender opens an ephemeral UDP socket whose multicast
// datagrams leave through ifi.
func listenMulticastSender(ctx context.Context, ifi *net.Interface) (*net.UDPConn, error) {
	var ip4 [4]byte
	for _, a := range ifaceAddrs(ifi, true) {
		ip4 = a.As4()
		break
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInet4Addr(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, ip4)
			if serr == nil {
				serr = unix.SetsockoptByte(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255)
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
