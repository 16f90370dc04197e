package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/cli/kdsrvcli"
	"kdsrv/internal/testkit"

	"kdsrv/internal/certstore"
	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
)

// The tests of this file point the certificate stores at temporary
// directories through KDSRV_USER_CERTS / KDSRV_MACHINE_CERTS (t.Setenv), so
// none of them runs in parallel.

// pkiEnv is a test CA with a server certificate in each store.
type pkiEnv struct {
	pki                 *certstore.TestPKI
	user, machine       *certstore.Entry
	userDir, machineDir string
}

func newPKIEnv(t *testing.T) *pkiEnv {
	t.Helper()
	e := &pkiEnv{userDir: t.TempDir(), machineDir: t.TempDir()}
	t.Setenv(certstore.EnvUserCerts, e.userDir)
	t.Setenv(certstore.EnvMachineCerts, e.machineDir)
	var err error
	if e.pki, err = certstore.NewTestPKI(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if e.user, err = e.pki.IssueTo(certstore.UserStore(), certstore.CertSpec{CommonName: "kd-e2e"}); err != nil {
		t.Fatal(err)
	}
	if e.machine, err = e.pki.IssueTo(certstore.MachineStore(), certstore.CertSpec{CommonName: "kd-e2e-machine"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// snapIn writes a thumbprint as the Windows snap-in shows it, in mixed
// case: "a9 09 50 2D ...".
func snapIn(tp string) string {
	var parts []string
	for i := 0; i < len(tp); i += 2 {
		p := tp[i : i+2]
		if i%4 == 2 {
			p = strings.ToUpper(p)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// sslSpec is the client's server=@{ssl:...} for the harness's first
// (ssl) listener.
func (h *harness) sslSpec(extra string) string { return h.spec("ssl:proto=tls1,", extra) }

// quick checks that a session reaches its target: attach and version.
func quick(t *testing.T, s *session, tgt *sim.Machine) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	h := s.host(t, kd.HostOptions{})
	if _, err := h.Attach(ctx); err != nil {
		t.Fatalf("attach: %v", err)
	}
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.MinorVersion != tgt.Config().Build {
		t.Fatalf("version %+v", v)
	}
}

func TestEndToEndSSL(t *testing.T) {
	e := newPKIEnv(t)
	h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1,certuser=kd-e2e,port=20000:29999,password=s3cret"}})
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	s, err := h.open(h.sslSpec("thumbprint="+e.user.Thumbprint()+",password=s3cret"), trans, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	suite(t, s, tgt)
	if cs := tlsState(t, s); cs.Version < tls.VersionTLS12 {
		t.Fatalf("negotiated %s", tls.VersionName(cs.Version))
	}
	if strings.Contains(h.logs.String(), "s3cret") {
		t.Fatal("the password appears in the server log")
	}
	if d := h.srv.Displays()[0]; !strings.HasPrefix(d, "ssl:proto=tls1,certuser=kd-e2e,port=") {
		t.Fatalf("display %q", d)
	}
}

func tlsState(t *testing.T, s *session) tls.ConnectionState {
	t.Helper()
	c, ok := s.Conn.Wire().NetConn().(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		t.Fatalf("the session's connection is a %T, not TLS", s.Conn.Wire().NetConn())
	}
	return c.ConnectionState()
}

func TestEndToEndSSLClicon(t *testing.T) {
	e := newPKIEnv(t)
	// The client listens on a port the server dials; find a free one.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	// The server starts first and dials until the client listens.
	h := newHarness(t, harnessOpts{transports: []string{fmt.Sprintf("ssl:proto=tls1,certuser=kd-e2e,port=%d,clicon=127.0.0.1,password=s3cret", port)}})
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	cspec := fmt.Sprintf("ssl:proto=tls1,clicon=127.0.0.1,port=%d,cafile=%s,password=s3cret", port, e.pki.CAFile)
	s, err := h.open(cspec, trans, client.Options{})
	if errors.Is(err, transport.ErrUnsupported) {
		t.Skipf("reverse connections are not in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	suite(t, s, tgt)
	// The server dialed, yet it is the TLS server: the client saw its
	// certificate.
	if cs := tlsState(t, s); certstore.Thumbprint(cs.PeerCertificates[0]) != e.user.Thumbprint() {
		t.Fatal("the client did not get the server's certificate")
	}
}

func TestEndToEndSPipe(t *testing.T) {
	e := newPKIEnv(t)
	t.Setenv("KDSRV_PIPE_DIR", shortDir(t))
	h := newHarness(t, harnessOpts{transports: []string{"spipe:proto=tls1,machuser=kd-e2e-machine,pipe=kde2e_%d,password=s3cret"},
		mutate: func(c *server.Config) { c.Listen.PID = 4242 }})
	if d := h.srv.Displays()[0]; d != "spipe:proto=tls1,machuser=kd-e2e-machine,pipe=kde2e_4242" {
		t.Fatalf("display %q", d)
	}
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	s, err := h.open("spipe:proto=tls1,server=localhost,pipe=kde2e_4242,cafile="+e.pki.CAFile+",password=s3cret", trans, client.Options{})
	if errors.Is(err, transport.ErrUnsupported) {
		t.Skipf("npipe is not in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	suite(t, s, tgt)
}

// TestSSLCertificateNames: the server finds its certificate by name or by
// thumbprint (snap-in spelling: spaces, mixed case) in either store, and
// the client verifies it by each method.
func TestSSLCertificateNames(t *testing.T) {
	e := newPKIEnv(t)
	tests := []struct {
		name, server, client string
	}{
		{"user store by spaced mixed-case thumbprint", "certuser=" + snapIn(e.user.Thumbprint()), "thumbprint=" + snapIn(e.user.Thumbprint())},
		{"user store by upper-case name", "certuser=KD-E2E", "cafile=" + e.pki.CAFile},
		{"machine store by name", "machuser=kd-e2e-machine", "machuser=" + e.machine.Thumbprint()},
		{"machine store by spaced thumbprint", "machuser=" + snapIn(e.machine.Thumbprint()), "machuser=KD-E2E-MACHINE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1," + tc.server + ",port=20000:29999"}})
			trans, tgt := h.addTarget("vm1", sim.Config{})
			s, err := h.open(h.sslSpec(tc.client), trans, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			quick(t, s, tgt)
		})
	}
}

// TestSSLRefusals: the wrong server certificate, a plaintext client, a
// silent client, a TLS 1.1 client, and an ssl client against a tcp server
// all fail promptly with a message that says why.
func TestSSLRefusals(t *testing.T) {
	e := newPKIEnv(t)
	h := newHarness(t, harnessOpts{
		transports: []string{"ssl:proto=tls1,certuser=kd-e2e,port=20000:29999", "tcp:port=20000:29999"},
		mutate:     func(c *server.Config) { c.Listen.TLSHandshakeTimeout = 300 * time.Millisecond },
	})
	trans, _ := h.addTarget("vm1", sim.Config{})
	sslAddr := h.srv.Addrs()[0].String()
	tcpPort := h.srv.Addrs()[1].(*net.TCPAddr).Port

	t.Run("wrong pin", func(t *testing.T) {
		_, err := h.open(h.sslSpec("thumbprint="+e.machine.Thumbprint()), trans, client.Options{})
		if !errors.Is(err, certstore.ErrPinMismatch) {
			t.Fatalf("got %v, want a pin mismatch", err)
		}
		waitLog(t, h, "the client rejected this server's certificate")
		for _, want := range []string{"not the one you pinned", e.machine.Thumbprint(), e.user.Thumbprint(), "CN=kd-e2e"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		_, err := h.open(strings.Replace(h.sslSpec(""), "ssl:proto=tls1,", "tcp:", 1), trans, client.Options{HandshakeTimeout: 5 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "drops clients that do not speak TLS") {
			t.Fatalf("plaintext client: %v", err)
		}
		waitLog(t, h, "does not speak TLS")
	})
	t.Run("silent client", func(t *testing.T) {
		c := dialTCP(t, sslAddr)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the server did not drop a silent client: %v", err)
		}
		waitLog(t, h, "did not finish within 300ms")
	})
	t.Run("TLS 1.1 client", func(t *testing.T) {
		c := dialTCP(t, sslAddr)
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Fatal("TLS 1.1 accepted")
		}
		waitLog(t, h, "older than TLS 1.2")
	})
	t.Run("ssl client, tcp server", func(t *testing.T) {
		_, err := h.open(fmt.Sprintf("ssl:proto=tls1,server=127.0.0.1,port=%d,thumbprint=%s", tcpPort, e.user.Thumbprint()), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
			t.Fatalf("got %v", err)
		}
	})
}

// waitLog waits (boundedly) for the server log to contain want.
func waitLog(t *testing.T, h *harness, want string) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("the server log to say %q", want), func() bool { return strings.Contains(h.logs.String(), want) })
}

// TestSSLBindingPerSession: every TLS session has its own channel binding,
// so the password proofs of two sessions differ even with one password.
func TestSSLBindingPerSession(t *testing.T) {
	e := newPKIEnv(t)
	h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1,certuser=kd-e2e,port=20000:29999,password=s3cret"}})
	trans1, _ := h.addTarget("vm1", sim.Config{})
	trans2, _ := h.addTarget("vm2", sim.Config{})
	var bindings [][]byte
	for _, trans := range []string{trans1, trans2} {
		s, err := h.open(h.sslSpec("thumbprint="+e.user.Thumbprint()+",password=s3cret"), trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := transport.Binding(s.Conn.Wire().NetConn())
		if err != nil || len(b) != 32 {
			t.Fatalf("binding %x %v", b, err)
		}
		bindings = append(bindings, b)
	}
	if bytes.Equal(bindings[0], bindings[1]) {
		t.Fatal("two TLS sessions share a channel binding")
	}
}

// relay sits between a client and the server. When terminate is set it
// is a man in the middle that ends the client's TLS session with its own
// certificate and opens a second one to the server, copying the plaintext
// between them; otherwise it copies the bytes of one TLS session.
type relay struct {
	ln   net.Listener
	mu   sync.Mutex
	open []net.Conn
}

func startRelay(t *testing.T, backend *spec.Transport, front *certstore.Entry, terminate bool) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	testkit.AcceptEach(t, ln, func(c net.Conn) { r.serve(c, backend, front, terminate) })
	t.Cleanup(func() { // before AcceptEach's cleanup waits for the copies
		r.mu.Lock()
		for _, c := range r.open {
			c.Close()
		}
		r.mu.Unlock()
	})
	return r
}

func (r *relay) track(c net.Conn) {
	r.mu.Lock()
	r.open = append(r.open, c)
	r.mu.Unlock()
}

func (r *relay) serve(c net.Conn, backend *spec.Transport, front *certstore.Entry, terminate bool) {
	r.track(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var in, out net.Conn = c, nil
	var err error
	if terminate {
		tc := tls.Server(c, certstore.ServerTLS(front))
		if tc.HandshakeContext(ctx) != nil {
			c.Close()
			return
		}
		in = tc
		out, err = transport.Dial(ctx, backend)
	} else {
		out, err = net.Dial("tcp", net.JoinHostPort(backend.Server, backend.Port.String()))
	}
	if err != nil {
		c.Close()
		return
	}
	r.track(out)
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(out, in)
	go pipe(in, out)
	wg.Wait()
}

// TestSSLRelayDefeated: a man in the middle that the client happens to
// trust (here: it pinned the relay's certificate) and that holds a valid
// TLS session with the real server still cannot pass the password proof
// along, because each TLS session has its own channel binding. A relay
// that only copies bytes (one TLS session end to end) works, so the
// failure is due to the binding.
func TestSSLRelayDefeated(t *testing.T) {
	e := newPKIEnv(t)
	mitm, err := e.pki.Issue(certstore.CertSpec{CommonName: "mitm"})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1,certuser=kd-e2e,port=20000:29999,password=s3cret"}})
	trans, tgt := h.addTarget("vm1", sim.Config{})
	backend, err := spec.ParseClientTransport(h.sslSpec("thumbprint=" + e.user.Thumbprint() + ",password=s3cret"))
	if err != nil {
		t.Fatal(err)
	}

	pass := startRelay(t, backend, nil, false)
	s, err := h.open(fmt.Sprintf("ssl:proto=tls1,server=127.0.0.1,port=%d,thumbprint=%s,password=s3cret",
		pass.ln.Addr().(*net.TCPAddr).Port, e.user.Thumbprint()), trans, client.Options{})
	if err != nil {
		t.Fatalf("through a byte-copying relay: %v", err)
	}
	quick(t, s, tgt)

	mid := startRelay(t, backend, mitm, true)
	_, err = h.open(fmt.Sprintf("ssl:proto=tls1,server=127.0.0.1,port=%d,thumbprint=%s,password=s3cret",
		mid.ln.Addr().(*net.TCPAddr).Port, mitm.Thumbprint()), trans, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("through a TLS-terminating relay: %v, want access denied", err)
	}
	waitLog(t, h, "client refused")
}

// TestSSLStartupErrors: kdsrv exits 1 at start-up with the certificate
// store's explanation when it cannot use the certificate.
func TestSSLStartupErrors(t *testing.T) {
	e := newPKIEnv(t)
	if _, err := e.pki.IssueTo(certstore.UserStore(), certstore.CertSpec{CommonName: "old",
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		t    string
		want []string
	}{
		{"ssl:proto=tls1,certuser=missing,port=20000:29999", []string{"certificate not found", e.userDir, "kd-e2e"}},
		{"ssl:proto=tls1,machuser=kd-e2e,port=20000:29999", []string{"certificate not found", e.machineDir}},
		{"ssl:proto=tls1,certuser=old,port=20000:29999", []string{"certificate has expired", "kdsrv cert create"}},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code := kdsrvcli.Main(ctx, []string{"-bind", "127.0.0.1", "-t", tc.t}, &out, &errb)
		cancel()
		if code != 1 {
			t.Errorf("%s: exit %d (stderr %q)", tc.t, code, errb.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%s: stderr lacks %q: %s", tc.t, w, errb.String())
			}
		}
	}
}

// TestCertCreateThenServe: "kdsrv cert create" makes a certificate that an
// ssl server uses at once, and the thumbprint it prints is what clients
// pin.
func TestCertCreateThenServe(t *testing.T) {
	newPKIEnv(t)
	var out, errb bytes.Buffer
	if code := kdsrvcli.Main(context.Background(), []string{"cert", "create", "kd-made"}, &out, &errb); code != 0 {
		t.Fatalf("cert create: exit %d: %s", code, errb.String())
	}
	m := regexp.MustCompile(`thumbprint=([0-9a-f]{40})`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no client example in:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "kdsrv -t ssl:proto=tls1,certuser=kd-made,port=") {
		t.Fatalf("no server example in:\n%s", out.String())
	}
	h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1,certuser=kd-made,port=20000:29999"}})
	trans, tgt := h.addTarget("vm1", sim.Config{})
	s, err := h.open(h.sslSpec("thumbprint="+m[1]), trans, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	quick(t, s, tgt)
}

// TestSSLShutdownDuringHandshake: a client stuck in the TLS handshake does
// not hold up Shutdown (the handshake deadline here is the default 10 s,
// longer than Shutdown may take).
func TestSSLShutdownDuringHandshake(t *testing.T) {
	newPKIEnv(t)
	h := newHarness(t, harnessOpts{transports: []string{"ssl:proto=tls1,certuser=kd-e2e,port=20000:29999"}})
	c := dialTCP(t, h.srv.Addrs()[0].String())
	testkit.WaitFor(t, "the server to take the connection", func() bool { return h.srv.Stats().Clients > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a pending TLS handshake: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the pending connection was not closed: %v", err)
	}
}
