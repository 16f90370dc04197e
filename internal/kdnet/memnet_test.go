package kdnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// memNet is an in-memory UDP network for tests that run in a
// testing/synctest bubble: datagrams go through channels, so the
// endpoints' timers run on the bubble's fake clock and a test takes no
// real time waiting for retransmissions or pokes. Like UDP it loses
// datagrams to a full receive queue or an address nobody listens on.
type memNet struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*memConn
	next  uint16
}

func newMemNet() *memNet { return &memNet{conns: map[netip.AddrPort]*memConn{}, next: 40000} }

// listen is a Config.ListenUDP for the network.
func (n *memNet) listen(_ context.Context, addr string) (PacketConn, error) {
	return n.open(addr)
}

func (n *memNet) open(addr string) (*memConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, err
	}
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p == 0 {
		for n.conns[netip.AddrPortFrom(ip, n.next)] != nil {
			n.next++
		}
		p = n.next
		n.next++
	}
	ap := netip.AddrPortFrom(ip.Unmap(), p)
	if n.conns[ap] != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Err: syscall.EADDRINUSE}
	}
	c := &memConn{n: n, addr: ap, in: make(chan memDatagram, 256), closed: make(chan struct{})}
	n.conns[ap] = c
	return c, nil
}

type memDatagram struct {
	b    []byte
	from netip.AddrPort
}

type memConn struct {
	n      *memNet
	addr   netip.AddrPort
	in     chan memDatagram
	closed chan struct{}
	once   sync.Once
}

func (c *memConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.in:
		return copy(b, d.b), d.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Err: net.ErrClosed}
	}
}

func (c *memConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, &net.OpError{Op: "write", Net: "udp", Err: net.ErrClosed}
	default:
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	c.n.mu.Lock()
	dst := c.n.conns[to]
	c.n.mu.Unlock()
	if dst != nil {
		select {
		case dst.in <- memDatagram{b: append([]byte(nil), b...), from: c.addr}:
		default: // a full queue drops it, as UDP does
		}
	}
	return len(b), nil
}

func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(c.addr) }

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.n.mu.Lock()
		delete(c.n.conns, c.addr)
		c.n.mu.Unlock()
	})
	return nil
}

// nets holds the in-memory network of each test running in a bubble.
var nets sync.Map // testing.TB -> *memNet

// bubble runs f in a synctest bubble in which the test's endpoints
// (listenHost, dialTarget) and sockets (socket, newProxy) live on one
// in-memory network.
func bubble(t *testing.T, f func(t *testing.T)) {
	synctest.Test(t, func(t *testing.T) {
		nets.Store(t, newMemNet())
		defer nets.Delete(t)
		f(t)
	})
}

// withHost runs f in a bubble with a host listening on the bubble's
// network and a context that ends after d.
func withHost(t *testing.T, d time.Duration, f func(t *testing.T, ctx context.Context, host *Link)) {
	bubble(t, func(t *testing.T) {
		f(t, ctxFor(t, d), listenHost(t, HostConfig{}))
	})
}

// netOf returns t's in-memory network, or nil outside a bubble (real UDP
// on loopback).
func netOf(t testing.TB) *memNet {
	v, _ := nets.Load(t)
	n, _ := v.(*memNet)
	return n
}

// socket opens a datagram socket on addr for the test to send and
// receive raw datagrams with; it is closed when the test ends.
func socket(t testing.TB, addr string) PacketConn {
	t.Helper()
	var pc PacketConn
	var err error
	if n := netOf(t); n != nil {
		pc, err = n.open(addr)
	} else {
		pc, err = listenUDP(context.Background(), addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func addrOf(pc PacketConn) netip.AddrPort {
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
