package wire

import (
	"context"
	"net"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests; nothing here should come close.
const testTimeout = 10 * time.Second

type pairFunc func(t testing.TB) (client, server net.Conn)

// transports are the byte streams every handshake and Conn test runs over.
var transports = []struct {
	name string
	pair pairFunc
}{
	{"pipe", pipePair},
	{"tcp", tcpPair},
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
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
	d := net.Dialer{Timeout: testTimeout}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		c.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c, r.c
}

type hsResult struct {
	conn *Conn
	err  error
}

// handshakePair runs Server on one end and Client on the other and returns
// both results. Conns that succeed are closed at cleanup.
// testSalt and testKeys stand in for a server's salt and both sides' key
// caches, so that each password is derived once per test binary.
var (
	testSalt = []byte("0123456789abcdef")
	testKeys = NewKeyCache()
)

// srv completes a test server Config as a real server does: the salt, and
// the key cache.
func srv(c Config) Config {
	if c.Salt == nil {
		c.Salt = testSalt
	}
	if c.Keys == nil {
		c.Keys = testKeys
	}
	return c
}

// cli gives a test client Config the shared key cache.
func cli(c Config) Config {
	if c.Keys == nil {
		c.Keys = testKeys
	}
	return c
}

func handshakePair(t *testing.T, pair pairFunc, ccfg, scfg Config) (cc *Conn, cerr error, sc *Conn, serr error) {
	t.Helper()
	ccfg, scfg = cli(ccfg), srv(scfg)
	cn, sn := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ch := make(chan hsResult, 1)
	go func() {
		c, err := Server(ctx, sn, scfg)
		ch <- hsResult{c, err}
	}()
	cc, cerr = Client(ctx, cn, ccfg)
	r := <-ch
	for _, c := range []*Conn{cc, r.conn} {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return cc, cerr, r.conn, r.err
}

// readFrame reads one frame from a raw connection under the test deadline.
func readFrame(t *testing.T, d *Decoder, nc net.Conn) (Frame, error) {
	t.Helper()
	if err := nc.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		return Frame{}, err
	}
	return d.Next()
}

// writeRaw writes bytes to a raw connection under the test deadline.
func writeRaw(t *testing.T, nc net.Conn, b []byte) {
	t.Helper()
	if err := nc.SetWriteDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// expectError reads frames until an Error frame and returns it.
func expectError(t *testing.T, d *Decoder, nc net.Conn) *RemoteError {
	t.Helper()
	for range 10 {
		f, err := readFrame(t, d, nc)
		if err != nil {
			t.Fatalf("waiting for an Error frame: %v", err)
		}
		if f.Type == TypeError {
			re, err := DecodeError(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return re
		}
	}
	t.Fatal("no Error frame in 10 frames")
	return nil
}

// expectClosed checks that the peer closed the raw connection.
func expectClosed(t *testing.T, d *Decoder, nc net.Conn) {
	t.Helper()
	for range 10 {
		if _, err := readFrame(t, d, nc); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open: %v", err)
			}
			return
		}
	}
	t.Fatal("connection still delivering frames")
}
