package testkit

import (
	"net"
	"testing"
	"time"
)

// TCPPair returns the two ends of a loopback TCP connection: the dialled
// end and the accepted one. Both close when the test ends.
func TCPPair(t testing.TB) (dialled, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	defer ln.Close()
	if err := ln.SetDeadline(time.Now().Add(WaitLimit)); err != nil {
		t.Fatal(err)
	}
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- res{c, err}
	}()
	d := net.Dialer{Timeout: WaitLimit}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	r := <-ch
	if r.err != nil {
		c.Close()
		t.Fatalf("accept on loopback: %v", r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c
}
