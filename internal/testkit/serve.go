package testkit

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// FreeTCPPort returns a loopback TCP port nothing listens on at the moment.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
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
func Serve(t testing.TB, serve func() error, shutdown func(context.Context) error, ended func(error) bool) {
	served := make(chan error, 1)
	go func() { served <- serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownLimit)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; ended != nil && !ended(err) {
			t.Errorf("Serve returned %v", err)
		}
	})
}

// ShutdownLimit bounds the shutdown of a server started with Serve.
const ShutdownLimit = 10 * time.Second
