package wire

import (
	"context"
	"kdsrv/internal/testkit"
	"net"
	"sync"
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

// tcpPair is a loopback TCP connection (testkit.TCPPair).
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	c, s := testkit.TCPPair(t)
	return c, s
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
	// otherSalt is a second server's salt; impostorSalt is the salt
	// TestHandshakeImpostorServer's fake server announces.
	otherSalt    = []byte("fedcba9876543210")
	impostorSalt = [SaltSize]byte{1}
)

// prepareTestKeys derives, in parallel and before any test runs, every
// password key the tests' handshakes use, so that no handshake step waits
// for PBKDF2 (KeyIterations rounds take seconds under -race on a loaded
// machine: more than a step's deadline).
func prepareTestKeys() {
	var wg sync.WaitGroup
	for _, k := range []struct {
		password string
		salt     []byte
	}{
		{"s3cret", testSalt}, {"s3cret", otherSalt}, {"s3cret", impostorSalt[:]},
		{"wrong1", testSalt}, {"wrong1", impostorSalt[:]},
	} {
		wg.Go(func() { _ = testKeys.Prepare(k.password, k.salt) })
	}
	wg.Wait()
}

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

// forEachTransport runs test as a parallel subtest over every transport.
func forEachTransport(t *testing.T, test func(t *testing.T, pair pairFunc)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			test(t, tr.pair)
		})
	}
}

// connPair is handshakePair for tests whose handshake must succeed.
func connPair(t *testing.T, pair pairFunc, ccfg, scfg Config) (cc, sc *Conn) {
	t.Helper()
	cc, cerr, sc, serr := handshakePair(t, pair, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	return cc, sc
}

// rawPeerOfServer runs Server with scfg (completed by srv) on one end of
// pair and returns the other end for the test to speak raw frames on, a
// Decoder reading it, and the channel that delivers Server's error.
func rawPeerOfServer(t *testing.T, pair pairFunc, scfg Config) (net.Conn, *Decoder, <-chan error) {
	t.Helper()
	cn, sn := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		_, err := Server(ctx, sn, srv(scfg))
		done <- err
	}()
	return cn, NewDecoder(cn), done
}

// badInput is a case of the tables of raw bytes a peer must refuse with an
// Error frame of code.
type badInput struct {
	name string
	send []byte
	code Code
}

// authenticatedPair runs the handshake over the given ends (client role on
// cn, server role on sn) and fails the test unless both sides complete it
// authenticated; what names the case in the failure.
func authenticatedPair(t *testing.T, what string, cn, sn net.Conn, ccfg, scfg Config) {
	t.Helper()
	cc, cerr, sc, serr := handshakePair(t, func(testing.TB) (net.Conn, net.Conn) { return cn, sn }, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatalf("%s: %v / %v", what, cerr, serr)
	}
	if !cc.Authenticated() || !sc.Authenticated() {
		t.Fatalf("%s: not authenticated", what)
	}
}

// fakeServer plays a hand-written server on sn: script reads sn through
// the Decoder it gets (sn is under the test deadline) and returns the Error
// frame the client sent it, if any. The channel delivers that (nil for
// none) when the script ends.
func fakeServer(sn net.Conn, script func(d *Decoder) *RemoteError) <-chan *RemoteError {
	got := make(chan *RemoteError, 1)
	go func() {
		_ = sn.SetDeadline(time.Now().Add(testTimeout))
		got <- script(NewDecoder(sn))
	}()
	return got
}

// nextError reads the next frame and returns it if it is an Error frame.
func nextError(d *Decoder) *RemoteError {
	if f, err := d.Next(); err == nil && f.Type == TypeError {
		re, _ := DecodeError(f.Payload)
		return re
	}
	return nil
}
