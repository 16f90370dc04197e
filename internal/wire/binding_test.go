package wire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kdsrv test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsPair wraps a raw stream pair in TLS (client side skips verification:
// certificates are not what this test is about).
func tlsPair(t *testing.T, cert tls.Certificate, cn, sn net.Conn) (*tls.Conn, *tls.Conn) {
	t.Helper()
	tc := tls.Client(cn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	ts := tls.Server(sn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ts.HandshakeContext(ctx) }()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return tc, ts
}

func mustBinding(t *testing.T, c *tls.Conn) []byte {
	t.Helper()
	b, err := TLSBinding(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != TLSBindingSize {
		t.Fatalf("binding is %d bytes", len(b))
	}
	return b
}

func TestTLSBindingDirect(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	cn, sn := tcpPair(t)
	tc, ts := tlsPair(t, cert, cn, sn)
	cb, sb := mustBinding(t, tc), mustBinding(t, ts)
	authenticatedPair(t, "handshake over TLS with binding", tc, ts, Config{Password: "s3cret", Binding: cb}, Config{Password: "s3cret", Binding: sb})
}

// TestTLSBindingDefeatsRelay: a relay terminates TLS toward the client and
// opens its own TLS toward the server, copying the plaintext. Both TLS
// sessions look fine, but the bindings differ, so the password proofs fail.
func TestTLSBindingDefeatsRelay(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	c1, r1 := tcpPair(t) // client ↔ relay
	r2, s2 := tcpPair(t) // relay ↔ server
	clientTLS, relayFront := tlsPair(t, cert, c1, r1)
	relayBack, serverTLS := tlsPair(t, cert, r2, s2)
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	wg.Add(2)
	go pipe(relayBack, relayFront)
	go pipe(relayFront, relayBack)
	t.Cleanup(func() {
		relayFront.Close()
		relayBack.Close()
		wg.Wait()
	})
	_, cerr, _, serr := handshakePair(t, func(testing.TB) (net.Conn, net.Conn) { return clientTLS, serverTLS },
		Config{Password: "s3cret", Binding: mustBinding(t, clientTLS)},
		Config{Password: "s3cret", Binding: mustBinding(t, serverTLS)})
	if code, _ := ErrorCode(cerr); code != AccessDenied {
		t.Fatalf("client through a relay: %v, want AccessDenied", cerr)
	}
	if code, _ := ErrorCode(serr); code != AccessDenied {
		t.Fatalf("server through a relay: %v, want AccessDenied", serr)
	}
}
