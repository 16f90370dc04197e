//go:build linux

package targetlink

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"golang.org/x/sys/unix"
)

// raceTries is how many opens each variant of the symlink-swap attack makes.
const raceTries = 3000

// serveTag accepts on a unix socket at p and writes tag to every client.
func serveTag(t *testing.T, p string, tag byte) {
	t.Helper()
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Accept(t, ln, func(c net.Conn) {
		_, _ = c.Write([]byte{tag})
		_ = c.Close()
	})
}

// swapper exchanges a and b atomically (renameat2 RENAME_EXCHANGE), as a
// local user who may write into the allowed directory would, until stopped.
func swapper(t *testing.T, a, b string) (stop func()) {
	t.Helper()
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2(RENAME_EXCHANGE) not supported here: %v", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 50_000_000; i++ { // bounded: the loop below stops it long before
			select {
			case <-done:
				return
			default:
			}
			_ = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// raceOutcome counts where the opens of one attack run ended.
type raceOutcome struct{ inside, outside, refused int }

// attack opens trans raceTries times with open and reads the tag of the
// socket reached.
func attack(t *testing.T, trans string, open func(ctx context.Context) (net.Conn, error)) raceOutcome {
	t.Helper()
	var o raceOutcome
	buf := make([]byte, 1)
	for range raceTries {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := open(ctx)
		cancel()
		if err != nil {
			o.refused++
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(buf)
		_ = c.Close()
		switch {
		case err != nil:
			t.Fatalf("%s: reading the tag: %v", trans, err)
		case buf[0] == 'E':
			o.outside++
		default:
			o.inside++
		}
	}
	return o
}

// TestSymlinkSwapRace reproduces the check-then-dial attack: a local user
// who can write into an allowed directory keeps swapping, between the
// allow-list check and the connection, the checked socket (or directory)
// with a symbolic link to a socket outside the list. Open must never reach
// the outside socket; the naive check-then-dial is measured for comparison.
func TestSymlinkSwapRace(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 opens per variant")
	}
	base := t.TempDir()
	allowed := filepath.Join(base, "allowed")
	outside := filepath.Join(base, "outside")
	mustMkdir(t, allowed)
	mustMkdir(t, outside)
	serveTag(t, filepath.Join(outside, "evil.sock"), 'E')

	// Variant 1: the socket itself is exchanged with a link.
	serveTag(t, filepath.Join(allowed, "vm.sock"), 'G')
	mustSymlink(t, filepath.Join(outside, "evil.sock"), filepath.Join(allowed, "alt.sock"))
	// Variant 2: a directory on the path is exchanged with a link.
	sub := filepath.Join(allowed, "d")
	mustMkdir(t, sub)
	serveTag(t, filepath.Join(sub, "evil.sock"), 'G')
	mustSymlink(t, outside, filepath.Join(allowed, "e"))

	a := mustAllow(t, []string{allowed + "/*.sock", allowed + "/d/*.sock"}, false)
	for _, v := range []struct {
		name, path, x, y string
	}{
		{"socket swapped", filepath.Join(allowed, "vm.sock"), filepath.Join(allowed, "vm.sock"), filepath.Join(allowed, "alt.sock")},
		{"directory swapped", filepath.Join(sub, "evil.sock"), sub, filepath.Join(allowed, "e")},
	} {
		trans := "com:pipe,port=" + v.path
		tg := target(t, trans)
		stop := swapper(t, v.x, v.y)
		naive := attack(t, trans, func(ctx context.Context) (net.Conn, error) {
			pl, err := a.admit(ctx, tg, true)
			if err != nil {
				return nil, err
			}
			return dialPipe(ctx, pl.real) // check, then dial by name
		})
		var changed atomic.Int64
		pinned := attack(t, trans, func(ctx context.Context) (net.Conn, error) {
			l, err := OpenStream(ctx, tg, a)
			if err != nil {
				if errors.Is(err, errPathChanged) {
					changed.Add(1)
				}
				return nil, err
			}
			return linkConn{l}, nil
		})
		stop()
		t.Logf("%s: check-then-dial reached the outside socket in %d of %d opens (inside %d, refused %d); Open: %d of %d (inside %d, refused %d, %d of them as changed)",
			v.name, naive.outside, raceTries, naive.inside, naive.refused, pinned.outside, raceTries, pinned.inside, pinned.refused, changed.Load())
		if pinned.outside != 0 {
			t.Errorf("%s: Open reached a socket outside the allow-list in %d of %d tries, want 0", v.name, pinned.outside, raceTries)
		}
		if pinned.inside == 0 {
			t.Errorf("%s: Open never reached the allowed socket: the test does not exercise the race", v.name)
		}
	}
}

// linkConn lets attack read from a Stream.
type linkConn struct{ Stream }

func (linkConn) LocalAddr() net.Addr                 { return nil }
func (linkConn) RemoteAddr() net.Addr                { return nil }
func (c linkConn) SetDeadline(t time.Time) error     { return c.Stream.SetReadDeadline(t) }
func (c linkConn) SetReadDeadline(t time.Time) error { return c.Stream.SetReadDeadline(t) }
