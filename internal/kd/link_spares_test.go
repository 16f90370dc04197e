package kd

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

func TestSpares(t *testing.T) {
	var s Spares
	a := s.Get(100)
	if len(a) != 100 || cap(a) != 256 {
		t.Fatalf("Get(100): len %d cap %d, want 100 and 256", len(a), cap(a))
	}
	s.Put(a)
	b := s.Get(200)
	if len(b) != 200 || &b[0] != &a[0] {
		t.Fatal("Get after Put did not reuse the spare buffer")
	}
	s.Put(b)
	c := s.Get(300) // too large for the spare: a new one, the spare stays
	if cap(c) != 512 || &c[0] == &b[0] {
		t.Fatalf("Get(300) = cap %d, reused the 256-byte spare", cap(c))
	}
	if d := s.Get(10); &d[0] != &b[0] {
		t.Fatal("the spare buffer was dropped by a Get it did not fit")
	}
	for range maxSpare + 3 {
		s.Put(make([]byte, 8))
	}
	if len(s.bufs) != maxSpare {
		t.Fatalf("%d spare buffers kept, want at most %d", len(s.bufs), maxSpare)
	}
	s.Put(nil) // ignored
	if len(s.bufs) != maxSpare {
		t.Fatal("Put(nil) was kept")
	}
}

// A receiver that recycles every payload still gets each packet's own
// bytes, and one that keeps a payload keeps it intact.
func TestLinkRecycle(t *testing.T) {
	a, b := net.Pipe()
	host, target := linkPair(t, a, b, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var kept []byte
	for i := range 20 {
		body := bytes.Repeat([]byte{byte(i + 1)}, 50+i*37)
		sent := make(chan error, 1)
		go func() { sent <- host.Send(ctx, TypeStateManipulate, body) }()
		m, err := target.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Packet.Payload, body) {
			t.Fatalf("packet %d: payload %x..., want %x...", i, m.Packet.Payload[:4], body[:4])
		}
		if i == 3 {
			kept = m.Packet.Payload
			continue
		}
		target.Recycle(m.Packet.Payload)
	}
	if want := bytes.Repeat([]byte{4}, 50+3*37); !bytes.Equal(kept, want) {
		t.Fatal("a payload the receiver kept was overwritten by a later packet")
	}
}
