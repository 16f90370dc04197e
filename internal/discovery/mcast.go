package discovery

import (
	"context"
	"net"
	"syscall"
)

// listenMulticastSender opens an ephemeral UDP socket whose multicast
// datagrams leave through ifi (the platform's setMulticastSender sets the
// outgoing interface and a TTL of 255 on it).
func listenMulticastSender(ctx context.Context, ifi *net.Interface) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return controlSocket(c, func(fd uintptr) error { return setMulticastSender(fd, ifi) })
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// controlSocket runs set on the socket behind rc and returns the first
// error, of reaching the socket or of set.
func controlSocket(rc syscall.RawConn, set func(fd uintptr) error) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = set(fd) }); err != nil {
		return err
	}
	return serr
}
