//go:build unix

package dbgport

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"kdsrv/internal/serial"
	"kdsrv/internal/testkit"
)

// readN reads exactly n bytes from r within 10s.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(r, b)
		got <- string(b[:k])
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no %d bytes within 10s", n)
		return ""
	}
}

// A PTY port serves one debugger after another on the same slave device:
// each Accept returns once the previous connection closed and a debugger
// opened the slave, bytes pass both ways, and what was written for a
// debugger that left does not reach the next one.
func TestPTYFollowsDebuggers(t *testing.T) {
	l, err := ListenPTY(5 * time.Millisecond)
	if errors.Is(err, serial.ErrNoPTY) {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr().Network() != "pty" || l.Addr().String() != l.Path() {
		t.Fatalf("Addr %s %q; want pty %q", l.Addr().Network(), l.Addr(), l.Path())
	}
	type result struct {
		c   net.Conn
		err error
	}
	accept := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			c, err := l.Accept()
			ch <- result{c, err}
		}()
		return ch
	}
	first := accept()
	s1 := testkit.OpenPTYSlave(t, l.Path())
	r := <-first
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	c1 := r.c
	if _, err := s1.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c1, 4); got != "ping" {
		t.Fatalf("master read %q; want ping", got)
	}
	if _, err := c1.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, s1, 4); got != "pong" {
		t.Fatalf("slave read %q; want pong", got)
	}

	// The debugger leaves with bytes queued for it.
	second := accept()
	if _, err := c1.Write([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	c1.Close()
	if _, err := c1.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v; want net.ErrClosed", err)
	}
	s2 := testkit.OpenPTYSlave(t, l.Path())
	defer s2.Close()
	r = <-second
	if r.err != nil {
		t.Fatalf("second Accept: %v", r.err)
	}
	defer r.c.Close()
	if _, err := r.c.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, s2, 5); got != "fresh" {
		t.Fatalf("the next debugger read %q first; want fresh", got)
	}

	// Close ends a pending Accept.
	r.c.Close()
	third := accept()
	l.Close()
	if r := <-third; !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v; want net.ErrClosed", r.err)
	}
}
