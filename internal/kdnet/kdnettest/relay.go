// Package kdnettest has test support for KDNET links: a UDP relay between
// a target and a host that can drop datagrams, for loss and replay tests
// over real sockets or kdnet's in-memory test network alike.
package kdnettest

import (
	"net/netip"
	"sync"
)

// PacketConn is the part of a datagram socket a Relay uses; *net.UDPConn
// and kdnet.PacketConn have it.
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	Close() error
}

// Relay forwards datagrams between one target and a host. The target
// sends to the front socket; what arrives there goes out of the back
// socket to the host, and what the host sends to the back socket goes out
// of the front socket to the address the front last heard from.
type Relay struct {
	front, back PacketConn
	host        netip.AddrPort
	drop        func(toHost bool, b []byte) bool

	mu     sync.Mutex
	target netip.AddrPort
	wg     sync.WaitGroup
}

// Start relays between front and back, toward host, until Close. drop, if
// set, is asked about every datagram before it is relayed (toHost tells
// the direction; b is valid only during the call) and returns true to
// drop it. It is called from the relay's two goroutines, one per
// direction.
func Start(front, back PacketConn, host netip.AddrPort, drop func(toHost bool, b []byte) bool) *Relay {
	r := &Relay{front: front, back: back, host: host, drop: drop}
	r.wg.Add(2)
	go r.relay(true)
	go r.relay(false)
	return r
}

// Close closes both sockets and returns once the relay has stopped.
func (r *Relay) Close() {
	r.front.Close()
	r.back.Close()
	r.wg.Wait()
}

func (r *Relay) relay(toHost bool) {
	defer r.wg.Done()
	in, out := r.back, r.front
	if toHost {
		in, out = r.front, r.back
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		dst := r.target
		if toHost {
			r.target, dst = from, r.host
		}
		r.mu.Unlock()
		if r.drop != nil && r.drop(toHost, buf[:n]) {
			continue
		}
		_, _ = out.WriteToUDPAddrPort(buf[:n], dst)
	}
}
