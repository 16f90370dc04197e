package dbgport

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// shortDir is a directory whose socket paths fit sun_path.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dbgport")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestListenUnixPolicy(t *testing.T) {
	dir := shortDir(t)
	ctx := context.Background()

	// A socket nobody serves is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = Listen(ctx, "unix", stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	// A socket another live process serves is not stolen.
	if _, err := Listen(ctx, "unix", stale); err == nil || !strings.Contains(err.Error(), "another process is serving") {
		t.Fatalf("Listen over a live socket: %v; want a refusal", err)
	}
	ln.Close()
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v; want it removed", err)
	}
	// Any other file is left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ctx, "unix", file); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Fatalf("Listen over a file: %v; want a 'not a socket' refusal", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the file was touched: %q %v", b, err)
	}
	if _, err := Listen(ctx, "udp", "127.0.0.1:0"); err == nil {
		t.Fatal("Listen(udp) succeeded")
	}
}

// pipeListener hands out in-memory connections, failing Accept a given
// number of times first.
type pipeListener struct {
	conns  chan net.Conn
	fails  int
	closed chan struct{}
	once   sync.Once
	tries  []time.Time
}

func newPipeListener(fails int) *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), fails: fails, closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.tries = append(l.tries, time.Now())
	if l.fails > 0 {
		l.fails--
		return nil, errors.New("too many open files")
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// dial connects a client through the listener.
func (l *pipeListener) dial() net.Conn {
	a, b := net.Pipe()
	l.conns <- b
	return a
}

func TestServeOneAtATimeAndBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener(4)
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var active, maxActive, served int
		done := make(chan error, 1)
		go func() {
			done <- Serve(ctx, ln, "test", nil, func(ctx context.Context, c net.Conn, _ string) {
				mu.Lock()
				active++
				served++
				maxActive = max(maxActive, active)
				mu.Unlock()
				b := make([]byte, 1)
				c.Read(b) // until the connection is closed
				mu.Lock()
				active--
				mu.Unlock()
			})
		}()
		first := ln.dial()
		synctest.Wait()
		second := ln.dial() // replaces the first
		synctest.Wait()
		if _, err := first.Write([]byte("x")); err == nil {
			t.Error("the replaced connection still works")
		}
		mu.Lock()
		if served != 2 || active != 1 || maxActive != 1 {
			t.Errorf("served %d, active %d, at most %d at once; want 2, 1, 1", served, active, maxActive)
		}
		mu.Unlock()
		// The failed Accepts were retried with a doubling pause.
		if len(ln.tries) < 5 {
			t.Fatalf("%d accepts", len(ln.tries))
		}
		for i, want := range []time.Duration{MinBackoff, 2 * MinBackoff, 4 * MinBackoff, 8 * MinBackoff} {
			if got := ln.tries[i+1].Sub(ln.tries[i]); got != want {
				t.Errorf("pause %d = %v, want %v", i, got, want)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve after ctx ended: %v", err)
		}
		second.Close()
		first.Close()
	})
}
