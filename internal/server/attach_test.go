package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kdclient "kdsrv/internal/client"

	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

// Targets as strict as a kernel (every sim.Machine): one KD state per
// machine, kept across every connection to it, as a real kernel keeps it
// across debuggers, kdsrv restarts and reopened VM pipes; a running kernel
// only polls for break-in (RESETs are lost); only a reboot (sim.Reboot, a
// new KernBase) starts the ids afresh.

// deafConn drops what the machine would read while deaf is set (a kernel
// that is not listening yet).
type deafConn struct {
	net.Conn
	deaf *atomic.Bool
}

func (c deafConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err != nil || !c.deaf.Load() {
			return n, err
		}
	}
}

// strictTarget is a strict simulated machine and the connections to its
// serial line.
type strictTarget struct {
	t    testing.TB
	sim  *sim.Machine
	deaf atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conn   net.Conn // the line's current connection
}

func newStrictTarget(t testing.TB, cfg sim.Config) *strictTarget {
	st := &strictTarget{t: t, sim: sim.New(cfg)}
	st.ctx, st.cancel = context.WithCancel(context.Background())
	t.Cleanup(st.close)
	return st
}

func (st *strictTarget) close() {
	st.cancel()
	st.wg.Wait()
}

// connect plugs a host connection into the machine's line.
func (st *strictTarget) connect(c net.Conn) {
	st.mu.Lock()
	st.conn = c
	st.mu.Unlock()
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		_ = st.sim.Serve(st.ctx, deafConn{c, &st.deaf})
	}()
}

// dropLine closes the line's current connection (a VM pipe going away).
func (st *strictTarget) dropLine() {
	st.mu.Lock()
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// listen serves the line on a unix socket, as a VM serves its serial pipe.
func (st *strictTarget) listen(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		st.t.Fatal(err)
	}
	testkit.Accept(st.t, ln, st.connect)
}

// startVM starts a strict target and a server whose links to it are
// in-memory pipes; trans opens it.
func startVM(t testing.TB, cfg sim.Config, tweak func(*Config)) (st *strictTarget, ls *testServer, trans string) {
	t.Helper()
	dir := t.TempDir()
	st = newStrictTarget(t, cfg)
	return st, startLCServer(t, dir, map[string]*strictTarget{"vm": st}, tweak), "com:pipe,port=" + dir + "/vm"
}

// startVMPipe serves a strict target's line on a unix socket, as a VM
// serves its serial pipe, and starts a server that may open it; trans
// opens it with reconnect.
func startVMPipe(t testing.TB, cfg sim.Config) (st *strictTarget, ls *testServer, trans string) {
	t.Helper()
	dir := testkit.ShortDir(t)
	sock := filepath.Join(dir, "vm.sock")
	st = newStrictTarget(t, cfg)
	st.listen(sock)
	return st, startLCServer(t, dir, nil, nil), "com:pipe,port=" + sock + ",reconnect"
}

// startLCServer starts a kdsrv on loopback whose KDCOM target links go to
// strict targets: through in-memory pipes (targets), or through the real
// pipe link on a unix socket (when targets is nil).
func startLCServer(t testing.TB, dir string, targets map[string]*strictTarget, tweak func(*Config)) *testServer {
	t.Helper()
	o := testServerOptions{
		allow: []string{dir + "/*"},
		config: func(cfg *Config) {
			cfg.AttachInterval = 50 * time.Millisecond
			cfg.AttachSlowInterval = 100 * time.Millisecond
			if tweak != nil {
				tweak(cfg)
			}
		},
	}
	if targets != nil {
		o.target = func(ts *spec.Target) (func(context.Context, net.Conn), error) {
			st := targets[filepath.Base(ts.Port)]
			if st == nil {
				return nil, fmt.Errorf("no test target %s", ts.Port)
			}
			return func(_ context.Context, c net.Conn) { st.connect(c) }, nil
		}
	}
	return startTestServer(t, o)
}

// detach releases the target and waits for the server's confirmation.
func (lc *wireClient) detach() {
	lc.t.Helper()
	if err := lc.conn.Wire().Send(wire.TypeDetach, nil); err != nil {
		lc.t.Fatal(err)
	}
	lc.next(func(f wire.Frame) bool { return f.Type == wire.TypeDetached }, "Detached")
	lc.close()
}

func isKD(pt kd.PacketType) func(wire.Frame) bool {
	return func(f wire.Frame) bool {
		if f.Type != wire.TypeKD {
			return false
		}
		got, _, err := wire.DecodeKD(f.Payload)
		return err == nil && kd.PacketType(got) == pt
	}
}

func isState(sc wire.StateCode) func(wire.Frame) bool {
	return isFrame(wire.TypeState, wire.DecodeState, func(st wire.State) bool { return st.State == sc })
}

// waitState waits for a State frame saying sc and returns it.
func (lc *wireClient) waitState(sc wire.StateCode, what string) wire.State {
	lc.t.Helper()
	f := lc.next(isState(sc), what)
	s, _ := wire.DecodeState(f.Payload)
	return s
}

func (lc *wireClient) waitStop() kd.StateChange {
	lc.t.Helper()
	f := lc.next(isKD(kd.TypeStateChange64), "state change")
	_, payload, _ := wire.DecodeKD(f.Payload)
	sc, err := kd.DecodeStateChange(payload)
	if err != nil {
		lc.t.Fatal(err)
	}
	return sc
}

func (lc *wireClient) call(req kd.Manipulate) kd.Manipulate {
	lc.t.Helper()
	if err := lc.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), req.Append(nil)); err != nil {
		lc.t.Fatal(err)
	}
	for {
		f := lc.next(isKD(kd.TypeStateManipulate), fmt.Sprintf("%v reply", req.API))
		_, payload, _ := wire.DecodeKD(f.Payload)
		rep, err := kd.DecodeManipulate(payload)
		if err != nil {
			lc.t.Fatal(err)
		}
		if kd.Matches(req, rep) {
			return rep
		}
	}
}

func (lc *wireClient) version() kd.Version {
	lc.t.Helper()
	rep := lc.call(kd.NewGetVersion())
	return rep.Version()
}

func (lc *wireClient) cont() {
	lc.t.Helper()
	req := kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue, CurrentSymbolStart: 1})
	if err := lc.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), req.Append(nil)); err != nil {
		lc.t.Fatal(err)
	}
}

// A target that outlives kdsrv keeps its ids: six kdsrv processes in a row,
// each with a session of a different length (odd and even numbers of
// exchanges, a resume and a break-in), all synchronise with it and get
// answers. Without the RESET on open, every second server hangs.
func TestAttachNewServerTargetHalted(t *testing.T) {
	dir := t.TempDir()
	st := newStrictTarget(t, sim.Config{Build: 19045, StartHalted: true})
	targets := map[string]*strictTarget{"vm": st}
	trans := "com:pipe,port=" + dir + "/vm"
	for i, calls := range []int{1, 2, 3, 4, 5, 6} {
		ls := startLCServer(t, dir, targets, nil)
		c := ls.open(t, trans)
		if sc := c.waitStop(); sc.ProgramCounter == 0 {
			t.Fatalf("server %d: empty state change", i)
		}
		for range calls {
			if v := c.version(); v.MinorVersion != 19045 || v.KernBase != st.sim.Layout().KernBase {
				t.Fatalf("server %d: version %+v", i, v)
			}
		}
		if i%2 == 1 {
			// Resume and break in again: more exchanges, and a stop the
			// next server must find.
			c.cont()
			testkit.WaitFor(t, "the target runs", func() bool { return !st.sim.Halted() })
			if err := c.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
				t.Fatal(err)
			}
			c.waitStop()
		}
		c.detach()
		ls.stop()
		if !strings.Contains(ls.logs.String(), `msg="target synchronised"`) || !strings.Contains(ls.logs.String(), "why=open") {
			t.Fatalf("server %d did not log its synchronisation:\n%s", i, ls.logs.String())
		}
	}
}

// A target left running when kdsrv opens it is broken into (its RESETs are
// lost while it runs, as on a kernel that only polls for break-in), and
// works; so it does after a new kdsrv finds it running again.
func TestAttachNewServerTargetRunning(t *testing.T) {
	dir := t.TempDir()
	st := newStrictTarget(t, sim.Config{Build: 22631})
	targets := map[string]*strictTarget{"vm": st}
	trans := "com:pipe,port=" + dir + "/vm"
	tgt := st.sim
	for i := range 3 {
		if tgt.Halted() {
			t.Fatalf("round %d: the target should be running", i)
		}
		ls := startLCServer(t, dir, targets, nil)
		c := ls.open(t, trans)
		sc := c.waitStop()
		if sc.ProgramCounter != tgt.Layout().BreakAddress {
			t.Fatalf("round %d: stopped at %#x, want the break-in address", i, sc.ProgramCounter)
		}
		if v := c.version(); v.MinorVersion != 22631 {
			t.Fatalf("round %d: version %+v", i, v)
		}
		c.cont()
		testkit.WaitFor(t, "the target runs", func() bool { return !tgt.Halted() })
		c.detach()
		ls.stop()
	}
}

// A target that never answers: the client hears that it does not respond
// once the RESETs are used up, the link stays open and kdsrv keeps polling
// with break-ins; when the target hears one, its ids are adopted and the
// session works.
func TestAttachNotRespondingThenAnswers(t *testing.T) {
	st, ls, trans := startVM(t, sim.Config{Build: 19045}, nil)
	st.deaf.Store(true)
	c := ls.open(t, trans+",resets=2")
	s := c.waitState(wire.StateNotResponding, "not-responding notice")
	if !strings.Contains(s.Text, "does not answer break-in and RESET") || !strings.Contains(s.Text, "2 RESET(s)") {
		t.Fatalf("notice %q", s.Text)
	}
	if ls.Stats().Targets != 1 {
		t.Fatal("the target link was closed")
	}
	// A packet sent meanwhile waits for the synchronisation.
	gv := kd.NewGetVersion()
	if err := c.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), gv.Append(nil)); err != nil {
		t.Fatal(err)
	}
	st.deaf.Store(false)
	c.waitState(wire.StateStopped, "the target answered")
	c.waitStop()
	f := c.next(isKD(kd.TypeStateManipulate), "GetVersion reply")
	_, payload, _ := wire.DecodeKD(f.Payload)
	rep, err := kd.DecodeManipulate(payload)
	if err != nil || rep.Version().MinorVersion != 19045 {
		t.Fatalf("version reply %+v %v", rep, err)
	}
	if r := st.sim.Stats().Link.ResetsReceived; r != 0 {
		t.Fatalf("the target received %d RESETs after resets=2 were used up", r)
	}
}

// After a VM reboot under reconnect the server forgets the old boot: the
// owner hears StateReconnected, the new boot's state change reaches it,
// GetVersion answers from the new boot, the log says the target rebooted,
// and a client attaching later sees the new boot's stop.
func TestAttachRebootUnderReconnect(t *testing.T) {
	st, ls, trans := startVMPipe(t, sim.Config{Build: 19045, StartHalted: true})
	c := ls.open(t, trans)
	c.waitStop()
	first := st.sim.Layout().KernBase
	if v := c.version(); v.KernBase != first {
		t.Fatalf("first boot: %+v", v)
	}
	// The VM restarts: its pipe closes, the machine reboots (a new
	// KernBase, fresh ids), and the pipe is served again (kdsrv redials
	// after 100 ms at the earliest).
	st.dropLine()
	st.sim.Reboot()
	second := st.sim.Layout().KernBase
	s := c.waitState(wire.StateReconnected, "StateReconnected")
	if !strings.Contains(s.Text, "re-established") {
		t.Fatalf("StateReconnected says %q", s.Text)
	}
	sc := c.waitStop()
	if sc.ProgramCounter != st.sim.Layout().BreakAddress {
		t.Fatalf("new boot stopped at %#x, want %#x", sc.ProgramCounter, st.sim.Layout().BreakAddress)
	}
	if v := c.version(); v.KernBase != second || second == first {
		t.Fatalf("after the reboot KernBase %#x, want the new boot's %#x (first boot %#x)", v.KernBase, second, first)
	}
	testkit.WaitFor(t, "the log says the target rebooted", func() bool { return strings.Contains(ls.logs.String(), "rebooted") })
	// A later client sees the new boot's stop, once.
	c.detach()
	c2 := ls.open(t, trans)
	if sc := c2.waitStop(); sc.ProgramCounter != st.sim.Layout().BreakAddress {
		t.Fatalf("second client: %v", sc)
	}
	if v := c2.version(); v.KernBase != second {
		t.Fatalf("second client: version %+v", v)
	}
}

// The pipe drops and comes back without a reboot: the target keeps its ids
// and its stop; the server synchronises again and the session goes on.
func TestAttachPipeDroppedNoReboot(t *testing.T) {
	st, ls, trans := startVMPipe(t, sim.Config{Build: 19045, StartHalted: true})
	c := ls.open(t, trans)
	c.waitStop()
	c.version() // one exchange: the ids are odd now
	st.dropLine()
	c.waitState(wire.StateReconnected, "StateReconnected")
	c.waitStop()
	for range 3 {
		if v := c.version(); v.MinorVersion != 19045 {
			t.Fatalf("version %+v", v)
		}
	}
	if got := st.sim.Boot(); got != 1 {
		t.Fatalf("the machine is in boot %d, want 1", got)
	}
}

func isNotice(code wire.Code) func(wire.Frame) bool {
	return isFrame(wire.TypeNotice, wire.DecodeNotice, func(n wire.Notice) bool { return n.Code == code })
}

func (lc *wireClient) notice(code wire.Code) wire.Notice {
	lc.t.Helper()
	f := lc.next(isNotice(code), fmt.Sprintf("Notice %v", code))
	n, _ := wire.DecodeNotice(f.Payload)
	return n
}

// A client cannot wedge a target: packets a debugger never sends to a
// target are refused with a Notice naming them, never reach the target,
// and the same session (and the next client) works at once.
func TestRefusedClientPackets(t *testing.T) {
	st, ls, trans := startVM(t, sim.Config{Build: 19045, StartHalted: true}, nil)
	c := ls.open(t, trans)
	c.waitStop()
	before := st.sim.Stats().Link.PacketsReceived
	cases := []struct {
		typ     uint16
		payload []byte
		want    string
	}{
		{0, make([]byte, 12), "UNUSED"},
		{uint16(kd.TypeReset), nil, "RESET"},
		{uint16(kd.TypeAcknowledge), nil, "ACKNOWLEDGE"},
		{uint16(kd.TypeStateChange64), make([]byte, 240), "STATE_CHANGE64"},
		{uint16(kd.TypeTraceIO), make([]byte, 64), "TRACE_IO"},
		{12, make([]byte, 56), "type 12"},
		{uint16(kd.TypeStateManipulate), make([]byte, 20), "shorter than DBGKD_MANIPULATE_STATE64"},
		{uint16(kd.TypeStateManipulate), make([]byte, kd.MaxPayload+1), "longer"},
		{uint16(kd.TypeDebugIO), make([]byte, 16), "GetString"},
	}
	for _, tc := range cases {
		if err := c.conn.Wire().SendKD(tc.typ, tc.payload); err != nil {
			t.Fatal(err)
		}
		n := c.notice(wire.BadRequest)
		if !strings.Contains(n.Text, tc.want) || !strings.Contains(n.Text, "the session goes on") {
			t.Errorf("type %d: notice %q, want it to name %q", tc.typ, n.Text, tc.want)
		}
		if v := c.version(); v.MinorVersion != 19045 {
			t.Fatalf("after type %d: version %+v", tc.typ, v)
		}
	}
	// Only the GetVersion requests reached the target.
	if got := st.sim.Stats().Link.PacketsReceived - before; got != uint64(len(cases)) {
		t.Errorf("the target received %d packets, want the %d GetVersion requests only", got, len(cases))
	}
	c.detach()
	c2 := ls.open(t, trans)
	c2.waitStop()
	if v := c2.version(); v.MinorVersion != 19045 {
		t.Fatalf("next client: version %+v", v)
	}
}

// A packet the target never acknowledges (a request to a running kernel)
// is dropped once its budget is spent, and its sender told; the queue
// moves on: after a break-in the session works. A client that floods the
// queue meanwhile is told its packets were dropped, and is not blocked.
func TestQueuedPacketDroppedAfterBudget(t *testing.T) {
	st, ls, trans := startVM(t, sim.Config{Build: 19045, StartHalted: true}, func(c *Config) {
		c.TargetTimeout = 20 * time.Millisecond
		c.SendBudget = 50 * time.Millisecond
	})
	c := ls.open(t, trans)
	c.waitStop()
	c.cont()
	testkit.WaitFor(t, "the target runs", func() bool { return !st.sim.Halted() })
	gv := kd.NewGetVersion()
	for range 70 {
		if err := c.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), gv.Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	n := c.notice(wire.Busy)
	if !strings.Contains(n.Text, "already waiting") {
		t.Errorf("busy notice %q", n.Text)
	}
	n = c.notice(wire.TargetNotResponding)
	if !strings.Contains(n.Text, "GetVersion") || !strings.Contains(n.Text, "did not acknowledge it within 50ms") {
		t.Errorf("dropped notice %q", n.Text)
	}
	// Let the queue drain (every packet spends its budget), then break in.
	testkit.WaitFor(t, "the queue drains", func() bool {
		tg := ls.targetFor(t, "vm")
		return len(tg.out) == 0
	})
	if err := c.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
		t.Fatal(err)
	}
	c.waitStop()
	if v := c.version(); v.MinorVersion != 19045 {
		t.Fatalf("after the drops: version %+v", v)
	}
	// The target may or may not have taken a dropped packet: the server
	// agreed on the ids again when it stopped.
	if !strings.Contains(ls.logs.String(), `why="resync after dropped packets`) {
		t.Error("no resynchronisation after the dropped packets")
	}
}

// A client's break-in does not wait behind a request the target never
// acknowledges because it runs (a request sent on a stale picture, just
// before the client heard the target rebooted): it goes out at once, the
// target stops, and then takes the request.
func TestBreakInNotQueuedBehindRequestToRunningTarget(t *testing.T) {
	st, ls, trans := startVM(t, sim.Config{Build: 19045, StartHalted: true}, func(c *Config) {
		// Long enough that a break-in queued behind the request would
		// outlast the test.
		c.TargetTimeout = time.Minute
		c.SendBudget = time.Hour
	})
	c := ls.open(t, trans)
	c.waitStop()
	c.cont()
	testkit.WaitFor(t, "the target runs", func() bool { return !st.sim.Halted() })
	gv := kd.NewGetVersion()
	if err := c.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), gv.Append(nil)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the request is in flight", func() bool {
		tg := ls.targetFor(t, "vm")
		tg.mu.Lock()
		defer tg.mu.Unlock()
		return tg.inflight != nil
	})
	if err := c.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
		t.Fatal(err)
	}
	c.waitStop()
	if v := c.version(); v.MinorVersion != 19045 {
		t.Fatalf("after the break-in: version %+v", v)
	}
}

// targetFor returns the open target whose port ends in name.
func (s *Server) targetFor(t testing.TB, name string) *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tg := range s.targets {
		if filepath.Base(tg.spec.Port) == name {
			return tg
		}
	}
	t.Fatalf("no open target %s", name)
	return nil
}

// A target that reboots on a line that stays up (a serial cable): its first
// packet carries the sync bit; the server clears what it knew, tells the
// owner and logs it; the new boot's stop reaches the client, and requests
// are answered by the new boot.
func TestTargetRebootOnLiveLine(t *testing.T) {
	st, ls, trans := startVM(t, sim.Config{Build: 19045, StartHalted: true}, nil)
	c := ls.open(t, trans)
	c.waitStop()
	first := st.sim.Layout().KernBase
	if v := c.version(); v.KernBase != first {
		t.Fatalf("first boot: %+v", v)
	}
	st.sim.Reboot()
	second := st.sim.Layout().KernBase
	s := c.waitState(wire.StateReconnected, "StateReconnected")
	if !strings.Contains(s.Text, "restarted its debug link") {
		t.Fatalf("StateReconnected says %q", s.Text)
	}
	if sc := c.waitStop(); sc.ProgramCounter != st.sim.Layout().BreakAddress {
		t.Fatalf("new boot's stop at %#x", sc.ProgramCounter)
	}
	if v := c.version(); v.KernBase != second || second == first {
		t.Fatalf("after the reboot KernBase %#x, want %#x (first boot %#x)", v.KernBase, second, first)
	}
	if !strings.Contains(ls.logs.String(), "restarted its debug link") {
		t.Error("the reboot was not logged")
	}
	// The server's picture is the new boot's: a client that asks for the
	// current stop (wire Reset) gets the new boot's state change.
	if err := c.conn.Wire().Send(wire.TypeReset, nil); err != nil {
		t.Fatal(err)
	}
	if sc := c.waitStop(); sc.ProgramCounter != st.sim.Layout().BreakAddress {
		t.Fatalf("the server replays %#x, want the new boot's stop", sc.ProgramCounter)
	}
}

// A client whose trans= differs from the open link's options shares the
// link as it is: its session info and a Notice name the differences, and
// the session works.
func TestOptionConflictNotice(t *testing.T) {
	_, ls, trans := startVM(t, sim.Config{Build: 19045, StartHalted: true}, nil)
	a := ls.open(t, trans+",resets=3")
	a.waitStop()
	if strings.Contains(a.info, "shared") {
		t.Fatalf("the first client was told of differences: %q", a.info)
	}
	a.detach()
	b := ls.open(t, trans+",baud=57600")
	for _, want := range []string{"resets=3 (you asked for no resets=", "you asked for baud=57600", "restart kdsrv"} {
		if !strings.Contains(b.info, want) {
			t.Errorf("session info %q does not say %q", b.info, want)
		}
	}
	n := b.notice(wire.OK)
	if !strings.Contains(n.Text, "resets=3 (you asked for no resets=") {
		t.Errorf("notice %q", n.Text)
	}
	b.waitStop()
	if v := b.version(); v.MinorVersion != 19045 {
		t.Fatalf("version %+v", v)
	}
	b.detach()
	// The same options: no notice, no note in the info.
	c := ls.open(t, trans+",resets=3")
	if strings.Contains(c.info, "shared") {
		t.Errorf("same options, yet the info says %q", c.info)
	}
}

// Through the bridge: after the target rebooted, the bridge never gives a
// debugger the old boot's stop. A debugger that attaches while the server
// is still synchronising with the new boot waits for the new boot's state
// change, and its requests are answered by the new boot.
func TestBridgeForgetsStopAfterReboot(t *testing.T) {
	st, ls, trans := startVMPipe(t, sim.Config{Build: 19045, StartHalted: true})
	c := ls.connect(t, trans)
	ctx := testkit.Context(t, 30*time.Second)
	notices := make(chan wire.Notice, 16)
	states := make(chan wire.State, 16)
	sess, err := kdclient.OpenSession(ctx, c, kdclient.Options{Logger: logx.Discard(), OnNotice: func(n wire.Notice) { notices <- n }},
		kdclient.SessionOptions{OnState: func(s wire.State) { states <- s }})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	h, stop := sess.Host(kd.HostOptions{AttachInterval: 100 * time.Millisecond})
	first := st.sim.Layout()
	if sc, err := h.Attach(ctx); err != nil || sc.ProgramCounter != first.BreakAddress {
		t.Fatalf("attach: %v at %#x", err, sc.ProgramCounter)
	}
	if v, err := h.Version(ctx); err != nil || v.KernBase != first.KernBase {
		t.Fatalf("version %+v %v", v, err)
	}
	stop() // the debugger leaves; the bridge keeps the stop

	// The VM restarts; its new kernel does not listen yet.
	st.deaf.Store(true)
	st.dropLine()
	st.sim.Reboot()
	second := st.sim.Layout()
	for s := range states {
		if s.State == wire.StateReconnected {
			break
		}
	}
	h2, stop2 := sess.Host(kd.HostOptions{AttachInterval: 100 * time.Millisecond})
	defer stop2()
	type result struct {
		sc  kd.StateChange
		err error
	}
	attached := make(chan result, 1)
	go func() {
		sc, err := h2.Attach(ctx)
		attached <- result{sc, err}
	}()
	st.deaf.Store(false)
	r := <-attached
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sc.ProgramCounter != second.BreakAddress {
		t.Fatalf("the debugger got a stop at %#x; the new boot stops at %#x (the old one at %#x)", r.sc.ProgramCounter, second.BreakAddress, first.BreakAddress)
	}
	if v, err := h2.Version(ctx); err != nil || v.KernBase != second.KernBase {
		t.Fatalf("version after the reboot %+v %v, want KernBase %#x", v, err, second.KernBase)
	}
}
