package netem

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/testkit"
)

// testTimeout bounds every blocking step of a test.
const testTimeout = 10 * time.Second

// echoServer echoes the connections it accepts, one at a time, until the
// test ends; it returns the address.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	testkit.Accept(t, ln, func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		io.Copy(c, c)
	})
	// This runs before Accept's own clean-up: an echo still running ends.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// readN reads exactly n bytes under a deadline.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	c.SetReadDeadline(time.Time{})
	return buf
}

// expectEOF asserts that the next read returns io.EOF.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after peer close = %d, %v; want 0, io.EOF", n, err)
	}
}

// waitErr returns what a blocked call sends on errc; the test fails with
// what if nothing comes within testTimeout.
func waitErr(t *testing.T, errc <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(testTimeout):
		t.Fatal(what)
		return nil
	}
}
