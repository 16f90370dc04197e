package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

// secServer is a kdsrv on loopback with the given -t values, an injected
// clock for its limits, and one simulated target (/kdsim/t) behind an
// in-memory pipe.
type secServer struct {
	srv   *Server
	clk   *fakeClock
	addrs []string // listener addresses, in -t order
	logs  *testkit.Buffer
	keys  *wire.KeyCache
}

// settled waits until the server has finished counting every password
// attempt of source (the client may see the server's answer before the
// server's goroutine records it).
func (ss *secServer) settled(t *testing.T, source string) {
	t.Helper()
	testkit.WaitFor(t, "the attempts from "+source+" to be counted", func() bool {
		ss.srv.guard.mu.Lock()
		defer ss.srv.guard.mu.Unlock()
		st := ss.srv.guard.src[source]
		return st == nil || st.pending == 0 && st.preAuth == 0
	})
}

func newSecServer(t *testing.T, transports []string, mod func(*Config)) *secServer {
	t.Helper()
	ss := &secServer{clk: newFakeClock(), keys: wire.NewKeyCache()}
	tgt := sim.New(sim.Config{})
	ts := startTestServer(t, testServerOptions{
		transports: transports,
		allow:      []string{"/kdsim/t"},
		target: func(*spec.Target) (func(context.Context, net.Conn), error) {
			return func(ctx context.Context, c net.Conn) { _ = tgt.Serve(ctx, c) }, nil
		},
		config: func(cfg *Config) {
			// Long enough for the client's PBKDF2 under the race detector.
			cfg.HandshakeTimeout = 60 * time.Second
			cfg.KeepAlive = -1
			cfg.TargetTimeout = time.Second
			cfg.Now = ss.clk.Now
			if mod != nil {
				mod(cfg)
			}
		},
	})
	ss.srv, ss.logs = ts.Server, ts.logs
	for _, a := range ts.Addrs() {
		ss.addrs = append(ss.addrs, a.String())
	}
	return ss
}

// dialFrom connects to listener i from the loopback address local ("" =
// any) without a handshake.
func (ss *secServer) dialFrom(t *testing.T, i int, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", ss.addrs[i])
	if err != nil {
		if local != "" {
			t.Skipf("cannot connect from %s (this system may not route all of 127.0.0.0/8): %v", local, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// handshake runs the client handshake from local on listener i.
func (ss *secServer) handshake(t *testing.T, i int, local, password string) (*wire.Conn, error) {
	t.Helper()
	nc := ss.dialFrom(t, i, local)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wc, err := wire.Client(ctx, nc, wire.Config{Password: password, Keys: ss.keys, KeepAlive: -1, HandshakeTimeout: 60 * time.Second, Software: "test"})
	if err == nil {
		t.Cleanup(func() { _ = wc.Close() })
	}
	return wc, err
}

// getInfo runs one command on an authenticated connection.
func getInfo(wc *wire.Conn) error {
	if err := wc.Send(wire.TypeControl, wire.EncodeControl(wire.Control{ID: 1, Command: wire.CmdGetInfo})); err != nil {
		return err
	}
	for {
		f, err := wc.Recv()
		if err != nil {
			return err
		}
		if f.Type != wire.TypeControl {
			continue
		}
		r, err := wire.DecodeControl(f.Payload)
		if err != nil {
			return err
		}
		if r.Status != wire.OK || !strings.HasPrefix(string(r.Body), Software) {
			return fmt.Errorf("GetInfo: %v %q", r.Status, r.Body)
		}
		return nil
	}
}

// remoteCode returns the code and text of an error the server reported.
func remoteCode(err error) (wire.Code, string) {
	var re *wire.RemoteError
	if errors.As(err, &re) {
		return re.Code, re.Msg
	}
	return wire.OK, ""
}

// TestServerGuessingThrottled: eight wrong passwords in a row from one
// address: 1–4 are denied, 5–8 refused as too many attempts with the time to
// wait; every failure and refusal is logged with the source address; the
// right password works once the back-off has passed.
func TestServerGuessingThrottled(t *testing.T) {
	ss := newSecServer(t, []string{"tcp:port=41000:48999,password=Right1", "tcp:port=41000:48999"}, nil)
	for i := 1; i <= 8; i++ {
		_, err := ss.handshake(t, 0, "", "Wrong1")
		ss.settled(t, "127.0.0.1")
		code, msg := remoteCode(err)
		switch {
		case i <= 4 && code != wire.AccessDenied:
			t.Fatalf("attempt %d: %v, want access denied", i, err)
		case i > 4 && (code != wire.TooManyAttempts || msg != "too many failed attempts; try again in 2 s"):
			t.Fatalf("attempt %d: %v, want too many attempts", i, err)
		}
	}
	logs := ss.logs.String()
	if n := countLines(logs, "level=WARN", `msg="wrong password"`, "from=127.0.0.1:", "source=127.0.0.1", `transport="tcp:`); n != 4 {
		t.Errorf("%d wrong-password lines, want 4:\n%s", n, logs)
	}
	if n := countLines(logs, "level=WARN", `msg="connection refused before authentication"`, "from=127.0.0.1:", "source=127.0.0.1",
		`code="too many failed attempts"`, `reason="too many failed attempts; try again in 2 s"`); n != 4 {
		t.Errorf("%d refusal lines, want 4:\n%s", n, logs)
	}
	if strings.Contains(logs, "Right1") || strings.Contains(logs, "Wrong1") {
		t.Error("a password appears in the log")
	}
	// A transport without a password is not throttled.
	if wc, err := ss.handshake(t, 1, "", ""); err != nil || getInfo(wc) != nil {
		t.Fatalf("password-less transport: %v", err)
	}
	// Still inside the back-off: even the right password is refused.
	if _, err := ss.handshake(t, 0, "", "Right1"); func() bool { c, _ := remoteCode(err); return c != wire.TooManyAttempts }() {
		t.Fatalf("right password inside the back-off: %v, want too many attempts", err)
	}
	ss.clk.Advance(DefaultBackoffBase)
	wc, err := ss.handshake(t, 0, "", "Right1")
	if err != nil {
		t.Fatalf("right password after the back-off: %v", err)
	}
	if !wc.Authenticated() || getInfo(wc) != nil {
		t.Fatal("not authenticated, or the command failed")
	}
}

// TestServerPreAuthCaps: the n+1-th unauthenticated connection from one
// address is refused with Busy, while a client from another address still
// authenticates and runs a command; a closed connection frees its place.
func TestServerPreAuthCaps(t *testing.T) {
	const n = 4
	ss := newSecServer(t, []string{"tcp:port=41000:48999,password=Right1"}, func(c *Config) {
		c.Limits.MaxPreAuthPerSource = n
		c.Limits.MaxPreAuth = 3 * n
		c.Metrics = true
	})
	var held []net.Conn
	for range n {
		held = append(held, ss.dialFrom(t, 0, "127.0.0.2"))
	}
	// The server accepts in order: the next connection from .2 is turned
	// away once the first n are counted.
	extra := ss.dialFrom(t, 0, "127.0.0.2")
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := wire.NewDecoder(extra).Next()
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("connection %d from one address: %v %v, want an Error frame", n+1, f.Type, err)
	}
	re, err := wire.DecodeError(f.Payload)
	if err != nil || re.Code != wire.Busy || !strings.Contains(re.Msg, "from your address") {
		t.Fatalf("connection %d from one address: %v %v, want Busy", n+1, re, err)
	}
	// Another address gets in and runs a command.
	wc, err := ss.handshake(t, 0, "127.0.0.3", "Right1")
	if err != nil || getInfo(wc) != nil {
		t.Fatalf("client from another address: %v", err)
	}
	if countLines(ss.logs.String(), "level=WARN", `msg="connection refused before authentication"`, "source=127.0.0.2", `code="server busy"`) == 0 {
		t.Errorf("the refusal was not logged:\n%s", ss.logs.String())
	}
	if got := scrape(t, ss.srv.MetricsHandler())["kdsrv_client_connections_total,result=refused_busy,transport=tcp"]; got < 1 {
		t.Errorf("kdsrv_client_connections_total{result=refused_busy} = %v after a refusal, want ≥ 1", got)
	}
	// Closing one of the held connections frees a place.
	_ = held[0].Close()
	testkit.WaitFor(t, "a place to be free after closing one", func() bool {
		wc, err := ss.handshake(t, 0, "127.0.0.2", "Right1")
		if err == nil {
			_ = wc.Close()
			return true
		}
		if c, _ := remoteCode(err); c != wire.Busy {
			t.Fatalf("after closing one: %v", err)
		}
		return false // the server has not seen the close yet
	})
}

// openTarget asks for the simulated target and returns the server's
// answer: nil once Opened arrives, or the refusal.
func openTarget(t *testing.T, wc *wire.Conn, takeover bool) error {
	t.Helper()
	c, err := spec.ParseConnect("kdsrv:server=@{tcp:server=127.0.0.1,port=1},trans=@{com:pipe,port=/kdsim/t}")
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.Send(wire.TypeOpen, wire.EncodeOpen(wire.Open{Target: c.Trans.Canonical(), TakeOver: takeover})); err != nil {
		return err
	}
	for {
		f, err := wc.Recv()
		if err != nil {
			return err
		}
		switch f.Type {
		case wire.TypeOpened:
			return nil
		case wire.TypeError:
			re, err := wire.DecodeError(f.Payload)
			if err != nil {
				return err
			}
			return re
		}
	}
}

func TestTakeoverNeeds(t *testing.T) {
	tr := func(s string) *spec.Transport {
		t.Helper()
		x, err := spec.ParseServerTransport(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	tcp, tcpPW := tr("tcp:port=1"), tr("tcp:port=1,password=a")
	ssl, sslPW := tr("ssl:proto=tls1,certuser=x,port=1"), tr("ssl:proto=tls1,certuser=x,port=1,password=a")
	spipePW := tr("spipe:proto=tls1,certuser=x,pipe=p,password=a")
	for _, tc := range []struct {
		owner, taker *spec.Transport
		needs        string
	}{
		{tcp, tcp, ""},
		{tcp, tcpPW, ""},
		{tcpPW, tcp, "a password"},
		{tcpPW, tcpPW, ""},
		{tcpPW, sslPW, ""},
		{ssl, tcp, "TLS"},
		{ssl, tcpPW, "TLS"},
		{sslPW, tcp, "a password and TLS"},
		{sslPW, ssl, "a password"},
		{sslPW, spipePW, ""},
	} {
		needs, hint := takeoverNeeds(tc.owner, tc.taker)
		if needs != tc.needs || (needs != "" && !strings.Contains(hint, "-takeover-any")) {
			t.Errorf("owner %s, taker %s: needs %q (hint %q), want %q", tc.owner, tc.taker, needs, hint, tc.needs)
		}
	}
}

// TestTakeoverPolicy: a client on a password-less transport cannot take
// over a target owned through a password-protected one, and is not told
// who owns it; a client on a password transport can, and is told; with
// TakeoverAny anyone can.
func TestTakeoverPolicy(t *testing.T) {
	for _, anyOK := range []bool{false, true} {
		t.Run(fmt.Sprintf("TakeoverAny=%v", anyOK), func(t *testing.T) {
			ss := newSecServer(t, []string{"tcp:port=41000:48999,password=Right1", "tcp:port=41000:48999"}, func(c *Config) { c.TakeoverAny = anyOK })
			owner, err := ss.handshake(t, 0, "", "Right1")
			if err != nil {
				t.Fatal(err)
			}
			if err := openTarget(t, owner, false); err != nil {
				t.Fatalf("owner: %v", err)
			}
			ownerAddr := owner.NetConn().LocalAddr().String()

			open := func(i int, pw string, takeover bool) error {
				wc, err := ss.handshake(t, i, "", pw)
				if err != nil {
					t.Fatal(err)
				}
				return openTarget(t, wc, takeover)
			}
			// Without -takeover: InUse; the owner is named to the
			// password transport only.
			err = open(1, "", false)
			if c, msg := remoteCode(err); c != wire.InUse || strings.Contains(msg, ownerAddr) || strings.Contains(msg, "127.0.0.1") {
				t.Errorf("password-less client: %v, want InUse without the owner's address", err)
			}
			err = open(0, "Right1", false)
			if c, msg := remoteCode(err); c != wire.InUse || !strings.Contains(msg, ownerAddr) {
				t.Errorf("password client: %v, want InUse naming the owner %s", err, ownerAddr)
			}
			// -takeover from the password-less transport.
			err = open(1, "", true)
			if anyOK {
				if err != nil {
					t.Fatalf("takeover with TakeoverAny: %v", err)
				}
				return
			}
			if c, msg := remoteCode(err); c != wire.InUse || !strings.Contains(msg, "only a client whose transport also has a password") ||
				!strings.Contains(msg, "-takeover-any") || strings.Contains(msg, "127.0.0.1") {
				t.Fatalf("password-less takeover: %v, want refused", err)
			}
			if countLines(ss.logs.String(), "level=WARN", `msg="takeover refused"`, `missing="a password"`) != 1 {
				t.Errorf("the refused takeover was not logged")
			}
			// -takeover from the password transport works.
			if err := open(0, "Right1", true); err != nil {
				t.Fatalf("takeover from the password transport: %v", err)
			}
		})
	}
}

// countLines counts the log lines that contain every one of parts.
func countLines(logs string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// emfileListener fails Accept with EMFILE a few times, then blocks until
// closed.
type emfileListener struct {
	fails  atomic.Int32
	closed chan struct{}
	once   sync.Once
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	<-l.closed
	return nil, net.ErrClosed
}
func (l *emfileListener) Close() error    { l.once.Do(func() { close(l.closed) }); return nil }
func (l *emfileListener) Addr() net.Addr  { return fakeAddr("emfile") }
func (l *emfileListener) Display() string { return "tcp:port=1" }

// TestAcceptBacksOffOnEMFILE: running out of descriptors makes the accept
// loop back off and warn (rate-limited), not spin or stop; Shutdown ends
// the wait.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	logs := &testkit.Buffer{}
	tr, err := spec.ParseServerTransport("tcp:port=1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Transports: []*spec.Transport{tr}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{closed: make(chan struct{})}
	ln.fails.Store(5)
	done := make(chan error, 1)
	go func() { done <- s.acceptLoop(&listener{ln: ln, t: tr}) }()
	testkit.WaitFor(t, "the accept loop to retry after EMFILE", func() bool { return ln.fails.Load() < 0 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = ln.Close()
	if err := <-done; err != nil {
		t.Errorf("accept loop ended with %v, want nil after Shutdown", err)
	}
	if n := countLines(logs.String(), "level=WARN", `msg="cannot accept connections; retrying"`, "too many open files", "ulimit -n"); n != 5 {
		t.Errorf("%d warnings for 5 EMFILE errors, want 5:\n%s", n, logs.String())
	}
}
