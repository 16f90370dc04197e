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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	c, s := connect(t, ln)
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// connect dials ln, accepts the connection and closes ln; both ends close
// when the test ends. Every step is bounded by WaitLimit.
func connect(t testing.TB, ln net.Listener) (dialled, accepted net.Conn) {
	t.Helper()
	defer ln.Close()
	if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		if err := dl.SetDeadline(time.Now().Add(WaitLimit)); err != nil {
			t.Fatal(err)
		}
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	d := net.Dialer{Timeout: WaitLimit}
	c, err := d.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatalf("dial %s: %v", ln.Addr(), err)
	}
	r := <-ch
	if r.err != nil {
		c.Close()
		t.Fatalf("accept on %s: %v", ln.Addr(), r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c, r.c
}
