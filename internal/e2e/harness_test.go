// Package e2e holds the end-to-end tests: simulated targets behind a real
// kdsrv, reached by real kdclient sessions over each transport.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/commux"
	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/testkit"
	"kdsrv/internal/transport"
)

// testKernBase is where tests that cannot reach their target's Layout
// have its first boot load the kernel.
const testKernBase = 0xfffff80262a00000

// harness is one kdsrv with simulated targets on unix sockets.
type harness struct {
	t    testing.TB
	dir  string
	srv  *server.Server
	sims map[string]*sim.Machine
	// served ends when the server's Serve returns.
	served *testkit.Served
	logs   *syncBuffer
	// srvCOM and cliCOM share serial ports among the com listeners of
	// the server and among the com dials of the clients.
	srvCOM, cliCOM *transport.COMPorts
}

// shortDir is a temporary directory with a path short enough for unix
// sockets.
func shortDir(t testing.TB) string { return testkit.ShortDir(t) }

type harnessOpts struct {
	transports []string // -t values; default a tcp port range on loopback
	allow      []string // extra -allow patterns; default DIR/*.sock
	noAllowDir bool
	mutate     func(*server.Config)
	com        commux.Config // multiplexer settings of com ports, both sides
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, dir: shortDir(t), sims: map[string]*sim.Machine{}, logs: &syncBuffer{},
		srvCOM: &transport.COMPorts{Config: o.com}, cliCOM: &transport.COMPorts{Config: o.com}}
	if len(o.transports) == 0 {
		o.transports = []string{"tcp:port=20000:29999"}
	}
	var ts []*spec.Transport
	for _, s := range o.transports {
		tr, err := spec.ParseServerTransport(s)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tr)
	}
	allows := append([]string(nil), o.allow...)
	if !o.noAllowDir {
		allows = append(allows, filepath.Join(h.dir, "*.sock"))
	}
	allow, err := targetlink.NewAllowList(allows, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Transports: ts,
		Allow:      allow,
		// The default step time-out: a client derives the password key
		// from the server's salt between two steps (PBKDF2, deliberately
		// slow), which takes seconds on a loaded machine under -race.
		HandshakeTimeout: 10 * time.Second,
		KDNETBindHost:    "127.0.0.1", // keep the server's KDNET sockets on loopback
		Logger:           slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg.Listen.BindHost = "127.0.0.1"
	cfg.Listen.COM = h.srvCOM
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.srv = s
	t.Cleanup(func() { // after the shutdown below
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs)
		}
	})
	// A reverse (clicon) server without -clicon-retry ends by itself when
	// its client leaves: that is its normal end.
	h.served = testkit.Serve(t, s.Serve, s.Shutdown, func(err error) bool {
		return errors.Is(err, server.ErrServerClosed) || errors.Is(err, transport.ErrReverseGone)
	})
	return h
}

// addTarget starts a simulated target serving debuggers on DIR/name.sock,
// like a VM's serial pipe, and returns the trans=@{...} text for it.
func (h *harness) addTarget(name string, cfg sim.Config) (trans string, tgt *sim.Machine) {
	h.t.Helper()
	path := filepath.Join(h.dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		h.t.Fatal(err)
	}
	tgt = sim.New(cfg)
	h.sims[name] = tgt
	ctx, cancel := context.WithCancel(context.Background())
	testkit.Accept(h.t, ln, func(c net.Conn) {
		_ = tgt.Serve(ctx, c) // one debugger (the server) at a time
	})
	h.t.Cleanup(cancel) // runs before Accept's cleanup waits for Serve
	return "com:pipe,port=" + path, tgt
}

// serverSpec is the client's server=@{...} for the harness's first listener.
func (h *harness) serverSpec(extra string) string { return h.spec("tcp:", extra) }

// spec is the client's server=@{...} for the harness's first listener with
// its protocol part before server= (tcp:, ssl:proto=tls1,).
func (h *harness) spec(proto, extra string) string {
	addr := h.srv.Addrs()[0].(*net.TCPAddr)
	s := fmt.Sprintf("%sserver=127.0.0.1,port=%d", proto, addr.Port)
	if extra != "" {
		s += "," + extra
	}
	return s
}

// mustOpen opens a session on the harness's first listener to the target
// trans, failing the test if it cannot.
func (h *harness) mustOpen(t testing.TB, trans string) *session {
	t.Helper()
	s, err := h.open(h.serverSpec(""), trans, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clientSpec is the client's server=@{...} for the harness's listener i,
// built from its display form: a tcp listener is reached on 127.0.0.1 at
// its port, an npipe listener on this machine. (TLS transports need the
// client's verification keys, and reverse (clicon) listeners have no
// address to reach: their tests build the spec themselves.)
func (h *harness) clientSpec(i int, extra string) string {
	h.t.Helper()
	d := h.srv.Displays()[i]
	proto, rest, _ := strings.Cut(d, ":")
	var s string
	switch {
	case proto == "npipe":
		s = "npipe:server=.," + rest
	case proto == "tcp" && !strings.Contains(rest, "clicon="):
		addr := h.srv.Addrs()[i].(*net.TCPAddr)
		s = fmt.Sprintf("tcp:server=127.0.0.1,port=%d", addr.Port)
	default:
		h.t.Fatalf("clientSpec: no client form for %s", d)
	}
	if extra != "" {
		s += "," + extra
	}
	return s
}

// session is a client session the test owns: it is closed (detached,
// then disconnected) when the test ends.
type session struct{ *client.Session }

func (h *harness) open(serverSpec, trans string, opts client.Options, so ...client.SessionOptions) (*session, error) {
	c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", serverSpec, trans))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts.Logger == nil {
		opts.Logger = logx.Discard()
	}
	if opts.Dial == nil {
		opts.Dial = (&transport.Dialer{COM: h.cliCOM}).Dial
	}
	var sopts client.SessionOptions
	if len(so) > 0 {
		sopts = so[0]
	}
	cs, err := client.OpenSession(ctx, c, opts, sopts)
	if err != nil {
		return nil, err
	}
	s := &session{cs}
	h.t.Cleanup(s.close)
	return s, nil
}

// close detaches (waiting for the server's answer, as kdclient does, so the
// target is free the moment close returns) and ends the connection.
func (s *session) close() { _ = s.Close() }

// kill drops the connection without a goodbye, as a crashed client would.
func (s *session) kill() { s.Abort() }

// host attaches an in-process debugger to the session's bridge.
func (s *session) host(t testing.TB, opts kd.HostOptions) *kd.Host {
	h, stop := s.Host(opts)
	t.Cleanup(stop)
	return h
}

// ctxFor is a context that ends after d or with the test.
// attach attaches an in-process debugger to the session's bridge (break-in
// and the target's state change), failing the test if it cannot.
func (s *session) attach(t testing.TB, ctx context.Context) *kd.Host {
	t.Helper()
	h := s.host(t, kd.HostOptions{})
	if _, err := h.Attach(ctx); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return h
}

// newHost runs an in-process debugger (kd.Host) on the KDCOM line c (a
// bridge's or a target's debugger endpoint). Its link closes when the test
// ends, or before with the close returned.
func newHost(t testing.TB, c io.ReadWriteCloser, opts kd.HostOptions) (h *kd.Host, close func()) {
	l := kd.NewHostLink(c, kd.Config{})
	t.Cleanup(func() { l.Close() })
	return kd.NewHost(l, opts), func() { l.Close() }
}

// dialHost is newHost on a connection to the unix socket path.
func dialHost(t testing.TB, path string) (h *kd.Host, close func()) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return newHost(t, c, kd.HostOptions{})
}

// dialTCP connects to addr, as a raw client; the connection closes when
// the test ends.
func dialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t testing.TB, d time.Duration) context.Context { return testkit.Context(t, d) }

func patternBytes(addr uint64, n int) []byte { return sim.PatternBytes(addr, n) }

// syncBuffer is the shared concurrency-safe buffer of the tests.
type syncBuffer = testkit.Buffer
