package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kdclient "kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/wire"
)

// Targets as strict as a kernel: one KD link state (ids, halted or not)
// per machine, kept across every connection to it, as a real kernel keeps
// it across debuggers, kdsrv restarts and reopened VM pipes. Only a reboot
// (a new simulated machine) starts the ids afresh.

// swapStream is the target's end of its serial line: a byte stream that
// survives the far end going away. Bytes written while nothing is attached
// are lost, as on a serial line with no cable; a read waits for the next
// connection.
type swapStream struct {
	mu     sync.Mutex
	conn   net.Conn
	up     chan struct{} // closed while conn is set
	done   chan struct{} // closed by Close
	closed bool
	// filter, if set, edits what the target reads (host → target).
	filter func([]byte) int
}

func newSwapStream() *swapStream {
	return &swapStream{up: make(chan struct{}), done: make(chan struct{})}
}

func (s *swapStream) attach(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return
	}
	if s.conn != nil {
		s.conn.Close()
	} else {
		close(s.up)
	}
	s.conn = c
}

// drop closes the current connection (the far end sees it go away).
func (s *swapStream) drop(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || c != nil && s.conn != c {
		return
	}
	s.conn.Close()
	s.conn = nil
	s.up = make(chan struct{})
}

func (s *swapStream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		c, up, filter := s.conn, s.up, s.filter
		s.mu.Unlock()
		if c == nil {
			select {
			case <-up:
				continue
			case <-s.done:
				return 0, net.ErrClosed
			}
		}
		n, err := c.Read(p)
		if n > 0 && filter != nil {
			n = filter(p[:n])
		}
		if n > 0 {
			return n, nil
		}
		if err != nil {
			select {
			case <-s.done:
				return 0, net.ErrClosed
			default:
			}
			s.drop(c)
		}
	}
}

func (s *swapStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		if _, err := c.Write(p); err != nil {
			s.drop(c)
		}
	}
	return len(p), nil
}

func (s *swapStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
		if s.conn != nil {
			s.conn.Close()
			s.conn = nil
		}
	}
	return nil
}

// resetPacket is a RESET control packet as hosts send it.
var resetPacket = kd.AppendControl(nil, kd.TypeReset, 0)

// strictTarget is a simulated machine with a persistent KD link.
type strictTarget struct {
	t  testing.TB
	mu sync.Mutex
	// The current boot.
	sim    *sim.Target
	stream *swapStream
	stop   context.CancelFunc
	served chan struct{}
	boots  int
	// ignoreResetRunning drops RESETs that reach the machine while it
	// runs, as a kernel that only polls for break-in does.
	ignoreResetRunning bool
	// deaf drops everything the machine would read (a kernel that is not
	// listening yet).
	deaf       atomic.Bool
	ln         net.Listener
	acceptDone chan struct{}
}

func newStrictTarget(t testing.TB, cfg sim.Config, ignoreResetRunning bool) *strictTarget {
	st := &strictTarget{t: t, ignoreResetRunning: ignoreResetRunning}
	st.boot(cfg)
	t.Cleanup(st.close)
	return st
}

// boot starts a new boot of the machine: fresh KD ids (its first packet
// carries the sync bit). The old boot's line is dropped.
func (st *strictTarget) boot(cfg sim.Config) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.shutdownLocked()
	st.boots++
	tgt := sim.New(cfg)
	s := newSwapStream()
	s.filter = func(b []byte) int {
		if st.deaf.Load() {
			return 0
		}
		if !st.ignoreResetRunning || tgt.Halted() {
			return len(b)
		}
		n := len(b)
		for {
			i := bytes.Index(b[:n], resetPacket)
			if i < 0 {
				return n
			}
			copy(b[i:], b[i+len(resetPacket):n])
			n -= len(resetPacket)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = tgt.Serve(ctx, s)
	}()
	st.sim, st.stream, st.stop, st.served = tgt, s, cancel, served
}

func (st *strictTarget) shutdownLocked() {
	if st.stop != nil {
		st.stop()
		st.stream.Close()
		<-st.served
	}
}

func (st *strictTarget) close() {
	st.mu.Lock()
	st.shutdownLocked()
	ln := st.ln
	st.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-st.acceptDone
	}
}

func (st *strictTarget) current() (*sim.Target, *swapStream) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sim, st.stream
}

// connect attaches a host connection to the machine's line.
func (st *strictTarget) connect(c net.Conn) {
	_, s := st.current()
	s.attach(c)
}

// dropLine closes the line's current connection (a VM pipe going away).
func (st *strictTarget) dropLine() {
	_, s := st.current()
	s.drop(nil)
}

// listen serves the line on a unix socket, as a VM serves its serial pipe:
// each new connection replaces the old one.
func (st *strictTarget) listen(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		st.t.Fatal(err)
	}
	st.mu.Lock()
	st.ln = ln
	st.acceptDone = make(chan struct{})
	st.mu.Unlock()
	go func() {
		defer close(st.acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			st.connect(c)
		}
	}()
}

// lcServer is a kdsrv on loopback whose KDCOM target links go to strict
// targets: through in-memory pipes (open), or through the real pipe link
// on a unix socket (when open is nil).
type lcServer struct {
	srv    *Server
	served chan error
	logs   *syncBuffer
	allow  *targetlink.AllowList
	stopFn func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startLCServer(t testing.TB, dir string, targets map[string]*strictTarget, tweak func(*Config)) *lcServer {
	t.Helper()
	tr, err := spec.ParseServerTransport("tcp:port=41000:48999")
	if err != nil {
		t.Fatal(err)
	}
	allow, err := targetlink.NewAllowList([]string{dir + "/*"}, false)
	if err != nil {
		t.Fatal(err)
	}
	ls := &lcServer{logs: &syncBuffer{}, allow: allow, served: make(chan error, 1)}
	cfg := Config{
		Transports:         []*spec.Transport{tr},
		Allow:              allow,
		HandshakeTimeout:   5 * time.Second,
		AttachInterval:     50 * time.Millisecond,
		AttachSlowInterval: 100 * time.Millisecond,
		Logger:             log.New(ls.logs, "", log.Lmicroseconds),
	}
	if targets != nil {
		cfg.OpenTarget = func(_ context.Context, ts *spec.Target, _ *targetlink.AllowList) (targetlink.Link, error) {
			st := targets[filepath.Base(ts.Port)]
			if st == nil {
				return nil, fmt.Errorf("no test target %s", ts.Port)
			}
			a, z := net.Pipe()
			st.connect(z)
			return simLink{a}, nil
		}
	}
	if tweak != nil {
		tweak(&cfg)
	}
	cfg.Listen.BindHost = "127.0.0.1"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	ls.srv = s
	go func() { ls.served <- s.Serve() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-ls.served
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("server log:\n%s", ls.logs.String())
		}
	})
	ls.stopFn = stop
	return ls
}

// stop shuts the server down (the target stays as it is).
func (ls *lcServer) stop() { ls.stopFn() }

func (ls *lcServer) port() int { return ls.srv.Addrs()[0].(*net.TCPAddr).Port }

// lcClient is a raw wire client: it sees every frame the server sends.
type lcClient struct {
	t      testing.TB
	conn   *kdclient.Conn
	frames chan wire.Frame
	done   chan struct{}
}

func (ls *lcServer) open(t testing.TB, trans string) *lcClient {
	t.Helper()
	c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{%s}", ls.port(), trans))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Open(ctx, c.Trans); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	lc := &lcClient{t: t, conn: conn, frames: make(chan wire.Frame, 256), done: make(chan struct{})}
	go func() {
		defer close(lc.done)
		defer close(lc.frames)
		for {
			f, err := conn.Wire().Recv()
			if err != nil {
				return
			}
			f.Payload = append([]byte(nil), f.Payload...)
			lc.frames <- f
		}
	}()
	t.Cleanup(lc.close)
	return lc
}

func (lc *lcClient) close() {
	lc.conn.Close()
	for range lc.frames {
	}
	<-lc.done
}

// detach releases the target and waits for the server's confirmation.
func (lc *lcClient) detach() {
	lc.t.Helper()
	if err := lc.conn.Wire().Send(wire.TypeDetach, nil); err != nil {
		lc.t.Fatal(err)
	}
	lc.next(func(f wire.Frame) bool { return f.Type == wire.TypeDetached }, "Detached")
	lc.close()
}

// next returns the next frame that want accepts, within 10 s.
func (lc *lcClient) next(want func(wire.Frame) bool, what string) wire.Frame {
	lc.t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-lc.frames:
			if !ok {
				lc.t.Fatalf("the server closed the connection while waiting for %s", what)
			}
			if want(f) {
				return f
			}
		case <-timer.C:
			lc.t.Fatalf("no %s from the server within 10s", what)
		}
	}
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
	return func(f wire.Frame) bool {
		if f.Type != wire.TypeState {
			return false
		}
		st, err := wire.DecodeState(f.Payload)
		return err == nil && st.State == sc
	}
}

func (lc *lcClient) waitStop() kd.StateChange {
	lc.t.Helper()
	f := lc.next(isKD(kd.TypeStateChange64), "state change")
	_, payload, _ := wire.DecodeKD(f.Payload)
	sc, err := kd.DecodeStateChange(payload)
	if err != nil {
		lc.t.Fatal(err)
	}
	return sc
}

func (lc *lcClient) call(req kd.Manipulate) kd.Manipulate {
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

func (lc *lcClient) version() kd.Version {
	lc.t.Helper()
	rep := lc.call(kd.NewGetVersion())
	return rep.Version()
}

func (lc *lcClient) cont() {
	lc.t.Helper()
	req := kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue, CurrentSymbolStart: 1})
	if err := lc.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), req.Append(nil)); err != nil {
		lc.t.Fatal(err)
	}
}

func waitUntil(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A target that outlives kdsrv keeps its ids: six kdsrv processes in a row,
// each with a session of a different length (odd and even numbers of
// exchanges, a resume and a break-in), all synchronise with it and get
// answers. Without the RESET on open, every second server hangs.
func TestAttachNewServerTargetHalted(t *testing.T) {
	dir := t.TempDir()
	st := newStrictTarget(t, sim.Config{Build: 19045, StartHalted: true}, true)
	targets := map[string]*strictTarget{"vm": st}
	trans := "com:pipe,port=" + dir + "/vm"
	for i, calls := range []int{1, 2, 3, 4, 5, 6} {
		ls := startLCServer(t, dir, targets, nil)
		c := ls.open(t, trans)
		if sc := c.waitStop(); sc.ProgramCounter == 0 {
			t.Fatalf("server %d: empty state change", i)
		}
		for range calls {
			if v := c.version(); v.MinorVersion != 19045 || v.KernBase != sim.KernBase {
				t.Fatalf("server %d: version %+v", i, v)
			}
		}
		if i%2 == 1 {
			// Resume and break in again: more exchanges, and a stop the
			// next server must find.
			c.cont()
			sim, _ := st.current()
			waitUntil(t, func() bool { return !sim.Halted() }, "the target runs")
			if err := c.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
				t.Fatal(err)
			}
			c.waitStop()
		}
		c.detach()
		ls.stop()
		if !strings.Contains(ls.logs.String(), "synchronised (open") {
			t.Fatalf("server %d did not log its synchronisation:\n%s", i, ls.logs.String())
		}
	}
}

// A target left running when kdsrv opens it is broken into (its RESETs are
// lost while it runs, as on a kernel that only polls for break-in), and
// works; so it does after a new kdsrv finds it running again.
func TestAttachNewServerTargetRunning(t *testing.T) {
	dir := t.TempDir()
	st := newStrictTarget(t, sim.Config{Build: 22631}, true)
	targets := map[string]*strictTarget{"vm": st}
	trans := "com:pipe,port=" + dir + "/vm"
	for i := range 3 {
		tgt, _ := st.current()
		if tgt.Halted() {
			t.Fatalf("round %d: the target should be running", i)
		}
		ls := startLCServer(t, dir, targets, nil)
		c := ls.open(t, trans)
		sc := c.waitStop()
		if sc.ProgramCounter != sim.BreakAddress {
			t.Fatalf("round %d: stopped at %#x, want the break-in address", i, sc.ProgramCounter)
		}
		if v := c.version(); v.MinorVersion != 22631 {
			t.Fatalf("round %d: version %+v", i, v)
		}
		c.cont()
		waitUntil(t, func() bool { return !tgt.Halted() }, "the target runs")
		c.detach()
		ls.stop()
	}
}

// A target that never answers: the client hears that it does not respond
// once the RESETs are used up, the link stays open and kdsrv keeps polling
// with break-ins; when the target hears one, its ids are adopted and the
// session works.
func TestAttachNotRespondingThenAnswers(t *testing.T) {
	dir := t.TempDir()
	st := newStrictTarget(t, sim.Config{Build: 19045}, true)
	st.deaf.Store(true)
	ls := startLCServer(t, dir, map[string]*strictTarget{"vm": st}, nil)
	c := ls.open(t, "com:pipe,port="+dir+"/vm,resets=2")
	f := c.next(isState(wire.StateNotResponding), "not-responding notice")
	s, _ := wire.DecodeState(f.Payload)
	if !strings.Contains(s.Text, "does not answer break-in and RESET") || !strings.Contains(s.Text, "2 RESET(s)") {
		t.Fatalf("notice %q", s.Text)
	}
	if ls.srv.Stats().Targets != 1 {
		t.Fatal("the target link was closed")
	}
	// A packet sent meanwhile waits for the synchronisation.
	gv := kd.NewGetVersion()
	if err := c.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), gv.Append(nil)); err != nil {
		t.Fatal(err)
	}
	st.deaf.Store(false)
	c.next(isState(wire.StateStopped), "the target answered")
	c.waitStop()
	f = c.next(isKD(kd.TypeStateManipulate), "GetVersion reply")
	_, payload, _ := wire.DecodeKD(f.Payload)
	rep, err := kd.DecodeManipulate(payload)
	if err != nil || rep.Version().MinorVersion != 19045 {
		t.Fatalf("version reply %+v %v", rep, err)
	}
	tgt, _ := st.current()
	if r := tgt.Stats().Link.ResetsReceived; r != 0 {
		t.Fatalf("the target received %d RESETs after resets=2 were used up", r)
	}
}

// After a VM reboot under reconnect the server forgets the old boot: the
// owner hears StateReconnected, the new boot's state change reaches it,
// GetVersion answers from the new boot, the log says the target rebooted,
// and a client attaching later sees the new boot's stop.
func TestAttachRebootUnderReconnect(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "vm.sock")
	st := newStrictTarget(t, sim.Config{Build: 19045, StartHalted: true}, true)
	st.listen(sock)
	ls := startLCServer(t, dir, nil, nil)
	trans := "com:pipe,port=" + sock + ",reconnect"
	c := ls.open(t, trans)
	c.waitStop()
	if v := c.version(); v.MinorVersion != 19045 {
		t.Fatalf("first boot: %+v", v)
	}
	// The VM reboots: a new kernel (another build, so the boots can be
	// told apart), and its pipe is closed and served again.
	st.boot(sim.Config{Build: 22000})
	st.dropLine()
	f := c.next(isState(wire.StateReconnected), "StateReconnected")
	s, _ := wire.DecodeState(f.Payload)
	if !strings.Contains(s.Text, "re-established") {
		t.Fatalf("StateReconnected says %q", s.Text)
	}
	sc := c.waitStop()
	if sc.ProgramCounter != sim.BreakAddress {
		t.Fatalf("new boot stopped at %#x", sc.ProgramCounter)
	}
	if v := c.version(); v.MinorVersion != 22000 {
		t.Fatalf("after the reboot version %+v, want the new boot's", v)
	}
	waitUntil(t, func() bool { return strings.Contains(ls.logs.String(), "rebooted") }, "the log says the target rebooted")
	// A later client sees the new boot's stop, once.
	c.detach()
	c2 := ls.open(t, trans)
	if sc := c2.waitStop(); sc.ProgramCounter != sim.BreakAddress {
		t.Fatalf("second client: %v", sc)
	}
	if v := c2.version(); v.MinorVersion != 22000 {
		t.Fatalf("second client: version %+v", v)
	}
}

// The pipe drops and comes back without a reboot: the target keeps its ids
// and its stop; the server synchronises again and the session goes on.
func TestAttachPipeDroppedNoReboot(t *testing.T) {
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "vm.sock")
	st := newStrictTarget(t, sim.Config{Build: 19045, StartHalted: true}, true)
	st.listen(sock)
	ls := startLCServer(t, dir, nil, nil)
	c := ls.open(t, "com:pipe,port="+sock+",reconnect")
	c.waitStop()
	c.version() // one exchange: the ids are odd now
	st.dropLine()
	c.next(isState(wire.StateReconnected), "StateReconnected")
	c.waitStop()
	for range 3 {
		if v := c.version(); v.MinorVersion != 19045 {
			t.Fatalf("version %+v", v)
		}
	}
	tgt, _ := st.current()
	if got := tgt.Stats().Connections; got != 1 {
		t.Fatalf("the machine served %d KD links, want 1 (no reboot)", got)
	}
}

// shortTempDir is a temporary directory with a path short enough for a
// unix socket.
func shortTempDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "kdlc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
