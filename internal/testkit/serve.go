package testkit

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

// FreeUDPPort returns a loopback UDP port nothing listens on at the moment.
func FreeUDPPort(t testing.TB) int { t.Helper(); return freePort(t, "udp") }

// FreeTCPPort returns a loopback TCP port nothing listens on at the moment.
func FreeTCPPort(t testing.TB) int { t.Helper(); return freePort(t, "tcp") }

func freePort(t testing.TB, network string) int {
	t.Helper()
	var addr net.Addr
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", "127.0.0.1:0"); err == nil {
			addr = c.LocalAddr()
			c.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err == nil {
			addr = ln.Addr()
			ln.Close()
		}
	}
	if err != nil {
		t.Fatalf("no free loopback %s port: %v", network, err)
	}
	return int(netip.MustParseAddrPort(addr.String()).Port())
}

// ShortDir is a temporary directory with a path short enough for unix
// sockets (108 bytes), removed when the test ends (t.TempDir's paths carry
// the test's name and can be too long).
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "kdt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Context is a context that ends after d or when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Accept hands every connection ln accepts to serve, one at a time on one
// goroutine, until ln is closed. When the test ends, ln is closed and
// Accept waits for serve to return: whatever serve blocks on must end by
// then (register its cancellation with t.Cleanup after calling Accept, so
// that it runs first).
func Accept(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	accept(t, ln, serve, false)
}

// AcceptEach is Accept serving every connection on a goroutine of its own,
// at the same time as the others; the test's end waits for them all.
func AcceptEach(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	accept(t, ln, serve, true)
}

func accept(t testing.TB, ln net.Listener, serve func(net.Conn), each bool) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !each {
				serve(c)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// Serve runs serve (a server's Serve method) until the test ends; then it
// calls shutdown (the server's Shutdown) with ShutdownLimit to finish, and
// fails the test if shutdown fails or serve ends with an error ended does
// not accept (ended nil: any error).
func Serve(t testing.TB, serve func() error, shutdown func(context.Context) error, ended func(error) bool) *Served {
	s := &Served{done: make(chan struct{})}
	go func() { // ends with the server, which the cleanup shuts down
		s.err = serve()
		close(s.done)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownLimit)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := s.Err(); ended != nil && !ended(err) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s
}

// Served is a server's Serve running for a test (Serve).
type Served struct {
	done chan struct{}
	err  error // set before done is closed
}

// Done is closed when Serve has returned.
func (s *Served) Done() <-chan struct{} { return s.done }

// Err waits for Serve to return and returns its error.
func (s *Served) Err() error {
	<-s.done
	return s.err
}

// ShutdownLimit bounds the shutdown of a server started with Serve.
const ShutdownLimit = 10 * time.Second
