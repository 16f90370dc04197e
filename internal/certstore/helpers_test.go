package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPKI makes a test CA in its own temporary directory.
func newPKI(t *testing.T) *TestPKI {
	t.Helper()
	p, err := NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// issueTo issues spec into store or fails the test.
func issueTo(t *testing.T, p *TestPKI, s Store, spec CertSpec) *Entry {
	t.Helper()
	e, err := p.IssueTo(s, spec)
	if err != nil {
		t.Fatalf("IssueTo(%q): %v", spec.CommonName, err)
	}
	return e
}

// writePEM writes PEM blocks to dir/name.
func writePEM(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func certBlock(c *x509.Certificate) *pem.Block {
	return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}
}

func keyBlock(t *testing.T, e *Entry) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(e.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

// checkNoSecret fails if msg could contain key material.
func checkNoSecret(t *testing.T, msg string) {
	t.Helper()
	for _, bad := range []string{"PRIVATE KEY", "-----BEGIN", "MIG", "MHc"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message contains %q, which looks like key material: %s", bad, msg)
		}
	}
}

// handshakeResult is what one side of a test connection saw.
type handshakeResult struct {
	state   tls.ConnectionState
	binding []byte
	err     error
}

// tlsPair runs one TLS connection over loopback TCP between a server using
// srv and a client using cli, and returns what each side saw. Everything is
// bounded by a 10 s deadline.
func tlsPair(t *testing.T, srv, cli *tls.Config) (server, client handshakeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan handshakeResult, 1)
	go func() {
		var r handshakeResult
		defer func() { done <- r }()
		_ = ln.(*net.TCPListener).SetDeadline(deadline)
		c, err := ln.Accept()
		if err != nil {
			r.err = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		tc := tls.Server(c, srv)
		if r.err = tc.Handshake(); r.err != nil {
			return
		}
		r.state = tc.ConnectionState()
		r.binding, r.err = Binding(r.state)
		// Wait for the client to finish reading the session ticket, then close.
		var one [1]byte
		_, _ = tc.Read(one[:])
	}()
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(deadline)
	tc := tls.Client(c, cli)
	if client.err = tc.Handshake(); client.err == nil {
		client.state = tc.ConnectionState()
		client.binding, client.err = Binding(client.state)
		_, _ = tc.Write([]byte{1})
	}
	_ = tc.Close()
	server = <-done
	return server, client
}

// wantKind fails unless err wraps kind.
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %q", err, kind)
	}
}

// mustKey returns e's private key, which must be a K.
func mustKey[K any](t *testing.T, e *Entry) K {
	t.Helper()
	k, ok := e.Key.(K)
	if !ok {
		var want K
		t.Fatalf("key is %T, want %T", e.Key, want)
	}
	return k
}

// spacedThumbprint formats hex the way the Windows snap-in shows it: byte
// pairs separated by spaces.
func spacedThumbprint(hexDigits string) string {
	var b strings.Builder
	for i := 0; i+1 < len(hexDigits); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hexDigits[i : i+2])
	}
	return b.String()
}
