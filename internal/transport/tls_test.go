package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"go.uber.org/goleak"

	"kdsrv/internal/certstore"
	"kdsrv/internal/spec"
)

// The tests here set the certificate-store environment variables, so none
// of them runs in parallel.

// tlsFixture is a test CA with one server certificate in the user store and
// one in the machine store, both found through KDSRV_*_CERTS.
type tlsFixture struct {
	pki           *certstore.TestPKI
	user, machine *certstore.Entry
	userDir       string
	machineDir    string
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{userDir: t.TempDir(), machineDir: t.TempDir()}
	t.Setenv(certstore.EnvUserCerts, f.userDir)
	t.Setenv(certstore.EnvMachineCerts, f.machineDir)
	pki, err := certstore.NewTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.pki = pki
	if f.user, err = pki.IssueTo(certstore.UserStore(), certstore.CertSpec{CommonName: "kd-user"}); err != nil {
		t.Fatal(err)
	}
	if f.machine, err = pki.IssueTo(certstore.MachineStore(), certstore.CertSpec{CommonName: "kd-machine", FriendlyName: "lab server"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// spaced writes a thumbprint the way the Windows snap-in shows it: pairs
// separated by spaces, here in upper case.
func spaced(tp string) string {
	var parts []string
	for i := 0; i < len(tp); i += 2 {
		parts = append(parts, strings.ToUpper(tp[i:i+2]))
	}
	return strings.Join(parts, " ")
}

func listenLoopback(t *testing.T, s string, o Options) Listener {
	t.Helper()
	o.BindHost = "127.0.0.1"
	ln, err := Listen(context.Background(), serverT(t, s), o)
	if err != nil {
		t.Fatalf("listen %q: %v", s, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(ln Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// served is the server side of one accepted connection after its handshake.
type served struct {
	conn    net.Conn
	binding []byte
	err     error
}

// serveOne accepts one connection, runs the TLS handshake through Binding,
// echoes one line back, and reports.
func serveOne(ln Listener) <-chan served {
	ch := make(chan served, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- served{err: err}
			return
		}
		b, err := Binding(c)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 5)
			if _, err = io.ReadFull(c, buf); err == nil {
				_, err = c.Write(buf)
			}
		}
		c.Close()
		ch <- served{conn: c, binding: b, err: err}
	}()
	return ch
}

// sessionBinding runs one exchange of the client's connection c with
// serveOne's server (ch), closes c, and checks that both sides derived the
// same 32-byte channel binding, which it returns.
func sessionBinding(t *testing.T, c net.Conn, ch <-chan served) []byte {
	t.Helper()
	cb, err := Binding(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 5)
	if _, err := io.ReadFull(c, echo); err != nil || string(echo) != "hello" {
		t.Fatalf("echo %q %v", echo, err)
	}
	c.Close()
	s := <-ch
	if s.err != nil {
		t.Fatalf("server: %v", s.err)
	}
	if len(cb) != 32 || !bytes.Equal(cb, s.binding) {
		t.Fatalf("bindings differ or are empty: client %x server %x", cb, s.binding)
	}
	return cb
}

// TestTLSServerAndClientVerification runs a TLS session for each way a
// server names its certificate and each way a client checks it.
func TestTLSServerAndClientVerification(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	// A copy of the machine certificate without its key in a separate
	// client store, for pinning by name.
	pinDir := t.TempDir()
	writeCertOnly(t, filepath.Join(pinDir, "server-copy.crt"), f.machine)
	if _, err := f.pki.IssueTo(certstore.UserStore(), certstore.CertSpec{CommonName: "kd-named", Hosts: []string{"lab1.example"}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		server    string // -t, with PORT replaced
		client    string // server=@{...}, with PORT replaced
		clientEnv string // KDSRV_USER_CERTS for the client, if set
		want      *certstore.Entry
		wantErr   error  // errors.Is on the client's error
		errText   string // substring of the client's error
	}{
		{name: "user store by name, pinned by thumbprint",
			server: "ssl:proto=tls1,certuser=KD-USER,port=20000:29999",
			client: "ssl:proto=tls1,server=127.0.0.1,port=PORT,thumbprint=" + f.user.Thumbprint(),
			want:   f.user},
		{name: "user store by spaced thumbprint, CA file",
			server: "ssl:proto=tls1,certuser=" + spaced(f.user.Thumbprint()) + ",port=20000:29999",
			client: "ssl:proto=tls1,server=127.0.0.1,port=PORT,cafile=" + f.pki.CAFile,
			want:   f.user},
		{name: "machine store by friendly name, spaced thumbprint pin",
			server: "ssl:proto=tls1,machuser=Lab Server,port=20000:29999",
			client: "ssl:proto=tls1,server=127.0.0.1,port=PORT,thumbprint=" + spaced(f.machine.Thumbprint()),
			want:   f.machine},
		{name: "machine store by thumbprint, pinned copy in client store",
			server:    "ssl:proto=tls1,machuser=" + strings.ToUpper(f.machine.Thumbprint()) + ",port=20000:29999",
			client:    "ssl:proto=tls1,server=localhost,port=PORT,certuser=kd-machine",
			clientEnv: pinDir,
			want:      f.machine},
		{name: "wrong pin",
			server:  "ssl:proto=tls1,certuser=kd-user,port=20000:29999",
			client:  "ssl:proto=tls1,server=127.0.0.1,port=PORT,thumbprint=" + f.machine.Thumbprint(),
			wantErr: certstore.ErrPinMismatch,
			errText: "presented subject \"CN=kd-user\", thumbprint " + f.user.Thumbprint()},
		{name: "CA file for the wrong host name",
			server:  "ssl:proto=tls1,certuser=kd-named,port=20000:29999",
			client:  "ssl:proto=tls1,server=127.0.0.1,port=PORT,cafile=" + f.pki.CAFile,
			errText: "connect using a name the certificate lists"},
		{name: "system roots do not know the test CA",
			server:  "ssl:proto=tls1,certuser=kd-user,port=20000:29999",
			client:  "ssl:proto=tls1,server=127.0.0.1,port=PORT",
			errText: "not issued by a CA you trust"},
		{name: "pin name missing from the client store",
			server:    "ssl:proto=tls1,certuser=kd-user,port=20000:29999",
			client:    "ssl:proto=tls1,server=127.0.0.1,port=PORT,certuser=nobody",
			clientEnv: pinDir,
			wantErr:   certstore.ErrNotFound,
			errText:   "certuser=/machuser= on the client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenLoopback(t, tc.server, Options{})
			ch := serveOne(ln)
			if tc.clientEnv != "" {
				t.Setenv(certstore.EnvUserCerts, tc.clientEnv)
			}
			ct := clientT(t, strings.ReplaceAll(tc.client, "PORT", strconv.Itoa(port(ln))))
			c, err := Dial(testkit.Context(t, 10*time.Second), ct)
			if tc.want == nil {
				if err == nil {
					c.Close()
					t.Fatal("dial succeeded, want an error")
				}
				t.Logf("client error: %v", err)
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not contain %q", err, tc.errText)
				}
				ln.Close()
				<-ch
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cs := c.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
			if cs.Version < tls.VersionTLS12 {
				t.Errorf("negotiated %s", tls.VersionName(cs.Version))
			}
			if got := certstore.Thumbprint(cs.PeerCertificates[0]); got != tc.want.Thumbprint() {
				t.Errorf("server presented %s, want %s", got, tc.want.Thumbprint())
			}
			sessionBinding(t, c, ch)
		})
	}
}

func writeCertOnly(t *testing.T, path string, e *certstore.Entry) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTLSBindingPerSession: two sessions with the same server get different
// channel bindings, so a password proof made for one is worthless on the
// other.
func TestTLSBindingPerSession(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	ln := listenLoopback(t, "ssl:proto=tls1,certuser=kd-user,port=20000:29999", Options{})
	ct := clientT(t, "ssl:proto=tls1,server=127.0.0.1,port="+strconv.Itoa(port(ln))+",thumbprint="+f.user.Thumbprint())
	var bindings [][]byte
	for range 2 {
		ch := serveOne(ln)
		c, err := Dial(testkit.Context(t, 10*time.Second), ct)
		if err != nil {
			t.Fatal(err)
		}
		bindings = append(bindings, sessionBinding(t, c, ch))
	}
	if bytes.Equal(bindings[0], bindings[1]) {
		t.Fatal("two TLS sessions have the same channel binding")
	}
}

// TestTLSBadClients: clients that do not speak TLS, say nothing, or offer
// only TLS 1.1 are dropped within the handshake time-out with a message
// that says why, and they do not hold up other clients.
func TestTLSBadClients(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	ln := listenLoopback(t, "ssl:proto=tls1,certuser=kd-user,port=20000:29999", Options{TLSHandshakeTimeout: 300 * time.Millisecond})
	addr := ln.Addr().String()
	tests := []struct {
		name   string
		client func(t *testing.T, c net.Conn)
		want   string
	}{
		{name: "plaintext", want: "does not speak TLS", client: func(t *testing.T, c net.Conn) {
			c.Write([]byte{0x4b, 0x01, 0, 0, 0, 0, 0, 12, 'h', 'e', 'l', 'l', 'o'})
		}},
		{name: "silent", want: "did not finish within 300ms", client: func(t *testing.T, c net.Conn) {}},
		{name: "TLS 1.1", want: "older than TLS 1.2", client: func(t *testing.T, c net.Conn) {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err == nil {
				t.Error("a TLS 1.1 client completed the handshake")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad, sc := dialAccept(t, ln, func() (net.Conn, error) { return net.Dial("tcp", addr) })
			errc := make(chan error, 1)
			go func() {
				_, err := Binding(sc)
				errc <- err
			}()
			tc.client(t, bad)
			// Meanwhile a good client gets through.
			ch := serveOne(ln)
			good, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, "ssl:proto=tls1,server=127.0.0.1,port="+strconv.Itoa(port(ln))+",thumbprint="+f.user.Thumbprint()))
			if err != nil {
				t.Fatalf("good client while a bad one is pending: %v", err)
			}
			sessionBinding(t, good, ch)
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("the bad client's handshake did not end")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("server error %v, want %q", err, tc.want)
			}
			t.Logf("server error: %v", err)
		})
	}
}

// TestTLSClientAgainstPlainServer: an ssl client that reaches a plain tcp
// server fails at once and says so.
func TestTLSClientAgainstPlainServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	ln := listenLoopback(t, "tcp:port=20000:29999", Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte{0x4b, 0x02, 0, 0, 0, 0, 0, 0}) // something that is not TLS
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
	}()
	_, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, "ssl:proto=tls1,server=127.0.0.1,port="+strconv.Itoa(port(ln))+",thumbprint="+f.user.Thumbprint()))
	if err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Fatalf("got %v", err)
	}
	<-done
}

// TestTLSServerCertificateErrors: a server that cannot use its certificate
// fails at Listen with certstore's explanation.
func TestTLSServerCertificateErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	if _, err := f.pki.IssueTo(certstore.UserStore(), certstore.CertSpec{CommonName: "client-only",
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		server string
		kind   error
		text   string
	}{
		{"ssl:proto=tls1,certuser=nobody,port=20000:29999", certstore.ErrNotFound, "kd-user"},
		{"ssl:proto=tls1,machuser=kd-user,port=20000:29999", certstore.ErrNotFound, "machine store"},
		{"ssl:proto=tls1,certuser=client-only,port=20000:29999", certstore.ErrNoServerAuth, "clientAuth"},
		{"spipe:proto=tls1,certuser=nobody,pipe=kd", certstore.ErrNotFound, "spipe transport"},
	}
	for _, tc := range tests {
		t.Run(tc.server, func(t *testing.T) {
			ln, err := Listen(context.Background(), serverT(t, tc.server), Options{BindHost: "127.0.0.1"})
			if err == nil {
				ln.Close()
				t.Fatal("listen succeeded")
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.kind, tc.text)
			}
		})
	}
	// A bad proto= never gets past the grammar, but the transport checks too.
	tr := serverT(t, "ssl:proto=tls1,certuser=kd-user,port=20000:29999")
	tr.TLSProto = "ssl3"
	if _, err := Listen(context.Background(), tr, Options{}); !errors.Is(err, certstore.ErrBadProto) {
		t.Fatalf("proto=ssl3: %v", err)
	}
}

// TestTLSDisplay: the display form keeps the certificate option and the
// inner transport's address part.
func TestTLSDisplay(t *testing.T) {
	tests := []struct {
		server, inner, want string
	}{
		{"ssl:proto=tls1,certuser=kd,port=53:60", "tcp:port=53:60", "ssl:proto=tls1,certuser=kd,port=53:60"},
		{"ssl:proto=tls1,machuser=kd,port=5005,ipversion=6", "tcp:port=5005,ipversion=6", "ssl:proto=tls1,machuser=kd,port=5005,ipversion=6"},
		{"spipe:proto=tls1,certuser=kd,pipe=kd_%d", "npipe:pipe=kd_42", "spipe:proto=tls1,certuser=kd,pipe=kd_42"},
		{"ssl:proto=tls1,certuser=kd,port=5005,clicon=host1", "tcp:port=5005,clicon=host1", "ssl:proto=tls1,certuser=kd,port=5005,clicon=host1"},
	}
	for _, tc := range tests {
		if got := tlsDisplay(serverT(t, tc.server), tc.inner); got != tc.want {
			t.Errorf("tlsDisplay(%q, %q) = %q, want %q", tc.server, tc.inner, got, tc.want)
		}
	}
}

// unixListener stands in for the npipe transport, so that TLS over a
// non-TCP stream (spipe) is tested whatever npipe this build has.
type unixListener struct{ net.Listener }

func (l unixListener) Display() string { return "npipe:pipe=" + filepath.Base(l.Addr().String()) }

// TestTLSOverOtherTransport: ListenTLS and DialTLS wrap any stream transport.
func TestTLSOverOtherTransport(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	dir := testkit.ShortDir(t)
	path := filepath.Join(dir, "kd_pipe")
	var sawInner *spec.Transport
	inner := func(_ context.Context, tr *spec.Transport, _ Options) (Listener, error) {
		sawInner = tr
		l, err := net.Listen("unix", path)
		return unixListener{l}, err
	}
	ln, err := ListenTLS(context.Background(), serverT(t, "spipe:proto=tls1,machuser=kd-machine,pipe=kd_pipe,password=abc"), Options{}, inner)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if sawInner.Proto != spec.NPipe || sawInner.Pipe != "kd_pipe" || sawInner.MachUser != "" || sawInner.TLSProto != "" {
		t.Errorf("inner transport %+v", sawInner)
	}
	if got, want := ln.Display(), "spipe:proto=tls1,machuser=kd-machine,pipe=kd_pipe"; got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	ch := serveOne(ln)
	dial := func(_ context.Context, tr *spec.Transport) (net.Conn, error) {
		if tr.Proto != spec.NPipe {
			t.Errorf("inner dial of %s", tr.Proto)
		}
		return net.Dial("unix", path)
	}
	c, err := DialTLS(testkit.Context(t, 10*time.Second), clientT(t, "spipe:proto=tls1,server=localhost,pipe=kd_pipe,cafile="+f.pki.CAFile), dial)
	if err != nil {
		t.Fatal(err)
	}
	sessionBinding(t, c, ch)
}

// TestTLSListenerAddrIsTCP: IcfEnable opens the port of a *net.TCPAddr.
func TestTLSListenerAddrIsTCP(t *testing.T) {
	newTLSFixture(t)
	ln := listenLoopback(t, "ssl:proto=tls1,certuser=kd-user,port=20000:29999", Options{})
	if _, ok := ln.Addr().(*net.TCPAddr); !ok {
		t.Fatalf("Addr is %T", ln.Addr())
	}
	if !strings.HasPrefix(ln.Display(), "ssl:proto=tls1,certuser=kd-user,port=") {
		t.Fatalf("display %q", ln.Display())
	}
}

// TestSPipeOverNPipe: spipe through the npipe transport.
func TestSPipeOverNPipe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newTLSFixture(t)
	dir := testkit.ShortDir(t)
	t.Setenv("KDSRV_PIPE_DIR", dir)
	ln, err := Listen(context.Background(), serverT(t, "spipe:proto=tls1,certuser=kd-user,pipe=kd_%d"), Options{PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, want := ln.Display(), "spipe:proto=tls1,certuser=kd-user,pipe=kd_42"; got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	ch := serveOne(ln)
	c, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, "spipe:proto=tls1,server=.,pipe=kd_42,thumbprint="+f.user.Thumbprint()))
	if err != nil {
		t.Fatal(err)
	}
	sessionBinding(t, c, ch)
}
