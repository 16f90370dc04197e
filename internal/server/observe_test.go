package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	kdclient "kdsrv/internal/client"

	"kdsrv/internal/kd"
	"kdsrv/internal/kd/kdtest"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

// consoleTarget plays a kernel on a pipe: boot text on the line, a
// breakpoint state change, answers to GetVersion and memory reads, and a
// line of console text before each answer ("tick N"). It re-sends its
// state change for a break-in or RESET.
type consoleTarget struct {
	mu    sync.Mutex
	ticks int
}

func (ct *consoleTarget) run(ctx context.Context, l *kd.Link) {
	sc := kdtest.Breakpoint(0xfffff80000401000)
	_ = l.WriteRaw([]byte("BOOTMGR: starting Windows\r\n"))
	ver := kd.Version{MinorVersion: 18362, ProtocolVersion: 6, MachineType: 0x8664, KernBase: 0xfffff80000400000}
	kdtest.ServeHalted(ctx, l, sc.Append(nil), func(req kd.Manipulate) (kd.Manipulate, bool) {
		ct.mu.Lock()
		ct.ticks++
		n := ct.ticks
		ct.mu.Unlock()
		_ = l.WriteRaw([]byte("tick " + strconv.Itoa(n) + "\r\n"))
		return kdtest.Reply(req, ver), true
	})
}

// obsHarness is a kdsrv with a password, metrics and a trace, whose
// target links are pipes to consoleTargets.
type obsHarness struct {
	srv      *Server
	keys     *wire.KeyCache // one derivation per password for all clients
	trace    *lockedBuffer
	port     int
	password string
}

func newObsHarness(t *testing.T) *obsHarness {
	t.Helper()
	h := &obsHarness{trace: &lockedBuffer{}, password: "S3cretPw77", keys: wire.NewKeyCache()}
	ts := startTestServer(t, testServerOptions{
		transports: []string{"tcp:port=41000:48999,password=" + h.password},
		target: func(*spec.Target) (func(context.Context, net.Conn), error) {
			return func(ctx context.Context, c net.Conn) {
				l := kd.NewTargetLink(c, kd.Config{})
				defer l.Close()
				(&consoleTarget{}).run(ctx, l)
			}, nil
		},
		config: func(cfg *Config) {
			// Generous: the password key derivation is slow under -race.
			cfg.HandshakeTimeout = 30 * time.Second
			cfg.Metrics = true
			cfg.Trace = kdtrace.New(h.trace, kdtrace.Text)
		},
	})
	h.srv = ts.Server
	h.port = ts.port()
	return h
}

func (h *obsHarness) connect(t *testing.T, password, target string) *spec.Connect {
	t.Helper()
	c, err := spec.ParseConnect("kdsrv:server=@{tcp:server=127.0.0.1,port=" + strconv.Itoa(h.port) + ",password=" + password + "},trans=@{com:pipe,port=/kdsim/" + target + "}")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// debugSession is a kdclient session with an in-process debugger attached
// through the bridge, its bridge traced.
type debugSession struct {
	host   *kd.Host
	trace  *lockedBuffer
	finish func()
}

func (h *obsHarness) debug(t *testing.T, ctx context.Context, target string) *debugSession {
	t.Helper()
	c := h.connect(t, h.password, target)
	ds := &debugSession{trace: &lockedBuffer{}}
	sess, err := kdclient.OpenSession(ctx, c, kdclient.Options{Logger: logx.Discard(), Keys: h.keys, Trace: kdtrace.New(ds.trace, kdtrace.Text)}, kdclient.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host, stopHost := sess.Host(kd.HostOptions{})
	ds.host = host
	ds.finish = sync.OnceFunc(func() {
		stopHost()
		sess.Close() // detaches first
	})
	t.Cleanup(ds.finish)
	if _, err := host.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	return ds
}

// watch opens c as a console watcher; what it receives goes to the
// buffer returned. The test's end stops it.
func (h *obsHarness) watch(t *testing.T, ctx context.Context, c *spec.Connect) *lockedBuffer {
	t.Helper()
	conn, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: logx.Discard(), Keys: h.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Watch(ctx, c.Trans); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	got := &lockedBuffer{}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- conn.Console(wctx, func(e kdclient.ConsoleEvent) { got.Write(e.Data) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console: %v", err)
		}
		conn.Close()
	})
	return got
}

func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			for _, lp := range m.GetLabel() {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsDuringSession: a Prometheus text parser reads the metrics
// during a session and finds packets, the active session and the failed
// authentication.
func TestMetricsDuringSession(t *testing.T) {
	h := newObsHarness(t)
	ctx := testkit.Context(t, 90*time.Second)
	// One client with the wrong password.
	bad := h.connect(t, "WrongPw", "m")
	if _, err := kdclient.Dial(ctx, bad.Server, kdclient.Options{Logger: logx.Discard(), Keys: h.keys}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	ds := h.debug(t, ctx, "m")
	if _, err := ds.host.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.host.ReadVirtual(ctx, 0xfffff80000401000, 16); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, h.srv.MetricsHandler())
	for key, min := range map[string]float64{
		"kdsrv_kd_packets_total,direction=to_target,type=state_manipulate": 2,
		"kdsrv_kd_packets_total,direction=from_target,type=state_change64": 1,
		"kdsrv_kd_bytes_total,direction=from_target,type=state_manipulate": 2 * (kd.HeaderSize + kd.ManipulateSize + 1),
		"kdsrv_sessions_active":                                           1,
		"kdsrv_auth_failures_total,transport=tcp":                         1,
		"kdsrv_client_connections_total,result=auth_failed,transport=tcp": 1,
		"kdsrv_client_connections_total,result=accepted,transport=tcp":    1,
		"kdsrv_api_call_duration_seconds,api=GetVersion":                  1,
		"kdsrv_api_call_duration_seconds,api=ReadVirtualMemory":           1,
		"kdsrv_target_links,state=halted":                                 1,
		"kdsrv_console_bytes_total,target=com:pipe,port=/kdsim/m":         1,
	} {
		v, ok := got[key]
		if !ok {
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			t.Fatalf("no series %s; have:\n%s", key, strings.Join(keys, "\n"))
		}
		if v < min {
			t.Errorf("%s = %v, want at least %v", key, v, min)
		}
	}
	for k := range got {
		if !strings.HasPrefix(k, "kdsrv_") {
			t.Errorf("series %s is not prefixed kdsrv_", k)
		}
	}
	ds.finish()
	if v := scrape(t, h.srv.MetricsHandler())["kdsrv_sessions_active"]; v != 0 {
		t.Errorf("kdsrv_sessions_active = %v after the session ended", v)
	}
}

// TestTraceOnEveryHop: kdsrv's trace holds the decoded GetVersion, state
// change and ReadVirtualMemory packets on the server-target and
// bridge-server hops, and the bridge's trace holds them on the
// bridge-server and debugger-bridge hops; no trace holds the password.
func TestTraceOnEveryHop(t *testing.T) {
	h := newObsHarness(t)
	ctx := testkit.Context(t, 90*time.Second)
	ds := h.debug(t, ctx, "tr")
	if _, err := ds.host.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.host.ReadVirtual(ctx, 0xfffff80000401000, 16); err != nil {
		t.Fatal(err)
	}
	ds.finish()
	check := func(name, trace string, want []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(trace, w) {
				t.Errorf("%s trace has no %q:\n%s", name, w, trace)
			}
		}
		if strings.Contains(trace, h.password) {
			t.Errorf("%s trace holds the password", name)
		}
	}
	srv := h.trace.String()
	check("kdsrv", srv, []string{
		"server-target target->server packet STATE_CHANGE64 id=0x8080", "len=240 cpu=0 reason=\"exception 0x80000003 (first chance)",
		"server-target server->target packet STATE_MANIPULATE id=0x8080000",
		"api=GetVersion",
		"server-target target->server console len=27 text=\"BOOTMGR: starting Windows\\r\\n\"",
		"server-target server->target packet STATE_MANIPULATE id=0x8080000", "api=ReadVirtualMemory cpu=0 addr=0xfffff80000401000 size=16",
		"status=0x00000000 addr=0xfffff80000401000 size=16 actual=16",
		"bridge-server bridge->server packet STATE_MANIPULATE len=56 api=GetVersion",
		"bridge-server server->bridge packet STATE_CHANGE64 len=240",
		"bridge-server server->bridge packet STATE_MANIPULATE len=72 api=ReadVirtualMemory",
		"server-target link",
	})
	check("bridge", ds.trace.String(), []string{
		"bridge-server server->bridge packet STATE_CHANGE64 len=240",
		"bridge-server bridge->server packet STATE_MANIPULATE len=56 api=GetVersion",
		"bridge-server server->bridge packet STATE_MANIPULATE len=72 api=ReadVirtualMemory",
		// The built-in debugger is in-process: its packets carry no ids.
		"debugger-bridge link text=\"debugger attached (in-process)\"",
		"debugger-bridge debugger->bridge packet STATE_MANIPULATE len=56 api=GetVersion",
		"debugger-bridge bridge->debugger packet STATE_CHANGE64 len=240",
		"debugger-bridge bridge->debugger packet STATE_MANIPULATE len=72 api=ReadVirtualMemory",
		"debugger-bridge debugger->bridge break-in",
		"debugger-bridge debugger->bridge reset",
	})
}

// TestConsoleWatcher: watchers see the backlog and live text the target
// writes between KD packets while a debugger session on the same target
// keeps working; a watcher neither owns nor disturbs the target.
func TestConsoleWatcher(t *testing.T) {
	h := newObsHarness(t)
	ctx := testkit.Context(t, 90*time.Second)
	c := h.connect(t, h.password, "con")

	// The first watcher opens the link itself: no break-in, no RESET.
	got1 := h.watch(t, ctx, c)
	waitText(t, got1, "BOOTMGR: starting Windows\r\n")
	// Give a wrong server a moment to break in or reset, then check it
	// did neither: watching must not disturb the target.
	time.Sleep(300 * time.Millisecond)
	if tr := h.trace.String(); strings.Contains(tr, "server->target break-in") || strings.Contains(tr, "server->target reset") {
		t.Fatalf("opening the link for a watcher broke in or reset the target:\n%s", tr)
	}

	// A debugger opens the same target (no takeover needed) and works.
	ds := h.debug(t, ctx, "con")
	// A second watcher joins during the session and gets the backlog.
	got2 := h.watch(t, ctx, c)
	for i := range 3 {
		v, err := ds.host.Version(ctx)
		if err != nil {
			t.Fatalf("debugger call %d while watched: %v", i, err)
		}
		if v.MinorVersion != 18362 {
			t.Fatalf("version %+v", v)
		}
		data, err := ds.host.ReadVirtual(ctx, 0xfffff80000401000, 32)
		if err != nil || !bytes.Equal(data, bytes.Repeat([]byte{0xcc}, 32)) {
			t.Fatalf("read while watched: %x, %v", data, err)
		}
	}
	waitText(t, got1, "tick 6\r\n")
	waitText(t, got2, "tick 6\r\n")
	for _, g := range []*lockedBuffer{got1, got2} {
		s := g.String()
		if !strings.HasPrefix(s, "BOOTMGR: starting Windows\r\n") {
			t.Errorf("watcher output does not start with the backlog: %q", s)
		}
		if strings.ContainsAny(s, "\x00") || strings.Contains(s, "0000") {
			t.Errorf("packet bytes leaked into the console: %q", s)
		}
	}
	// Nobody was refused for the target being in use, and the watchers
	// did not disturb the session: no resends or retransmissions.
	m := scrape(t, h.srv.MetricsHandler())
	for k, v := range m {
		if (strings.HasPrefix(k, "kdsrv_kd_retransmissions_total") || strings.HasPrefix(k, "kdsrv_kd_resends_total")) && v != 0 {
			t.Errorf("%s = %v: the session was disturbed", k, v)
		}
	}
	if m["kdsrv_sessions_active"] != 3 {
		t.Errorf("kdsrv_sessions_active = %v, want 3 (a debugger and two watchers)", m["kdsrv_sessions_active"])
	}
}

// TestConsoleWatchRefusals: a watch is checked like any open, and a
// watcher cannot drive the target.
func TestConsoleWatchRefusals(t *testing.T) {
	h := newObsHarness(t)
	ctx := testkit.Context(t, 90*time.Second)
	c, err := spec.ParseConnect("kdsrv:server=@{tcp:server=127.0.0.1,port=" + strconv.Itoa(h.port) + ",password=" + h.password + "},trans=@{com:pipe,port=/elsewhere/x}")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: logx.Discard(), Keys: h.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Watch(ctx, c.Trans); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("watching a target outside -allow: %v", err)
	}
	c = h.connect(t, h.password, "r")
	conn2, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: logx.Discard(), Keys: h.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := conn2.Watch(ctx, c.Trans); err != nil {
		t.Fatal(err)
	}
	if err := conn2.Wire().SendKD(uint16(kd.TypeStateManipulate), func() []byte { m := kd.NewGetVersion(); return m.Append(nil) }()); err != nil {
		t.Fatal(err)
	}
	err = conn2.Console(ctx, func(kdclient.ConsoleEvent) {})
	if code, ok := wire.ErrorCode(errors.Unwrap(err)); err == nil || (ok && code != wire.BadRequest) {
		t.Fatalf("a watcher sending KD packets: %v", err)
	}
}

func waitText(t *testing.T, b *lockedBuffer, want string) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%q in the console", want), func() bool { return strings.Contains(b.String(), want) })
}

// lockedBuffer is the shared concurrency-safe buffer of the tests.
type lockedBuffer = testkit.Buffer
