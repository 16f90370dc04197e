package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/sim/simtest"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

func TestMain(m *testing.M) {
	// goleak.Cleanup replaces goleak's own os.Exit: exit here.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testkit.CleanupPrograms()
		os.Exit(code)
	}))
}

// suite is the end-to-end sequence every transport must pass: attach,
// version, context, read/write, 100 reads of 4 KiB, DbgPrint while
// running, break-in again. It also checks that the target-side link saw no
// corrupt packets, no RESET besides the one kdsrv sends when it
// synchronises with the target on each connection, and no retransmission
// besides the one such a RESET may cause.
func suite(t *testing.T, s *session, tgt *sim.Machine) {
	t.Helper()
	runSuite(t, s, tgt, false)
}

// What the suite writes, and where: a later session checks it is there
// (reattached).
const (
	suiteWriteAddr = sim.DataBase + 0x10000
	suiteWrite     = "kdsrv end-to-end write"
)

// reattached checks a session opened after the one that ran the suite
// closed: it attaches (the target reports a breakpoint) and reads what the
// suite wrote.
func reattached(t *testing.T, s *session) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	h := s.host(t, kd.HostOptions{})
	if sc, err := h.Attach(ctx); err != nil || sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("re-attach: %v %v", sc, err)
	}
	if got, err := h.ReadVirtual(ctx, suiteWriteAddr, len(suiteWrite)); err != nil || string(got) != suiteWrite {
		t.Fatalf("memory after re-attach %q %v", got, err)
	}
}

// runSuite is suite; with lossyLink (a UDP target link, which may need
// retransmissions) the final check is only that nothing was corrupt. It
// returns the debugger it used, stopped in the debugger.
func runSuite(t *testing.T, s *session, tgt *sim.Machine, lossyLink bool) *kd.Host {
	t.Helper()
	h := debugSuite(t, s, debugChecks{
		attached: func(t *testing.T, sc kd.StateChange) {
			if sc.ProgramCounter != tgt.Layout().BreakAddress || sc.Exception.ExceptionCode != kd.StatusBreakpoint {
				t.Fatalf("state change %v", sc)
			}
		},
		version: func(t *testing.T, ctx context.Context, h *kd.Host) {
			v, err := h.Version(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v.KernBase != tgt.Layout().KernBase || v.MinorVersion != tgt.Config().Build || v.MachineType != kd.MachineAMD64 {
				t.Fatalf("version %+v", v)
			}
		},
		context: func(t *testing.T, _ kd.StateChange, c kd.ContextX64) {
			if want := tgt.Context(0); c.Rip != want.Rip || c.Rax != want.Rax || c.Rsp != want.Rsp {
				t.Fatalf("context rip %#x rax %#x, want %#x %#x", c.Rip, c.Rax, want.Rip, want.Rax)
			}
		},
		write: suiteWrite,
		reads: 100,
		quiet: 400 * time.Millisecond,
		ticks: tgt.Config().PrintEvery > 0,
	})
	st := tgt.Stats()
	// A RESET that reaches the target while its state change waits for an
	// ACK makes it send the state change again: that one retransmission
	// per RESET is expected.
	if st.Link.Corrupt != 0 || !lossyLink && (st.Link.ResetsReceived > st.Connections || st.Link.Retransmits > st.Link.ResetsReceived) {
		t.Fatalf("target link stats %+v", st.Link)
	}
	return h
}

// debugChecks are what debugSuite expects of one kind of target.
type debugChecks struct {
	attached func(t *testing.T, sc kd.StateChange)                  // the attach's state change
	version  func(t *testing.T, ctx context.Context, h *kd.Host)    // GetVersion
	context  func(t *testing.T, sc kd.StateChange, c kd.ContextX64) // CPU 0's context at the stop
	write    string                                                 // written at suiteWriteAddr and read back
	reads    int                                                    // 4 KiB reads of the data pattern
	quiet    time.Duration                                          // no state change for this long after Continue
	ticks    bool                                                   // the target's DbgPrint ticks arrive while it runs
}

// debugSuite is the debugger's part of the suites: attach, version,
// context, write and read-back, reads compared with the data pattern, run
// (with DbgPrint output, and no state change), break in again. It returns
// the debugger, stopped.
func debugSuite(t *testing.T, s *session, c debugChecks) *kd.Host {
	t.Helper()
	ctx := ctxFor(t, 90*time.Second)
	var mu sync.Mutex
	var prints []string
	h := s.host(t, kd.HostOptions{OnPrint: func(cpu uint16, text []byte) {
		mu.Lock()
		prints = append(prints, string(text))
		mu.Unlock()
	}})
	sc, err := h.Attach(ctx)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	c.attached(t, sc)
	c.version(t, ctx, h)
	cx, err := h.Context(ctx, 0)
	if err != nil {
		t.Fatalf("context: %v", err)
	}
	c.context(t, sc, cx)
	data := []byte(c.write)
	if n, err := h.WriteVirtual(ctx, suiteWriteAddr, data); err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	if got, err := h.ReadVirtual(ctx, suiteWriteAddr, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q %v; want %q", got, err, data)
	}
	for i := range c.reads {
		a := sim.DataBase + 0x100000 + uint64(i)*4096
		got, err := h.ReadVirtual(ctx, a, 4096)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(got, patternBytes(a, 4096)) {
			t.Fatalf("read %d at %#x: not the simulated memory pattern", i, a)
		}
	}
	// Run with DbgPrint output, then break in again.
	if err := h.Continue(ctx); err != nil {
		t.Fatalf("continue: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, c.quiet)
	if sc, err := h.WaitStateChange(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("while running: state change %v, %v; want none", sc, err)
	}
	cancel()
	if sc, err := h.Break(ctx); err != nil || sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("second break-in: %v %v", sc, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if c.ticks && (len(prints) < 2 || !strings.HasPrefix(prints[0], "kdtarget: tick")) {
		t.Fatalf("DbgPrint while running: %d lines (first %q); want the target's ticks", len(prints), strings.Join(prints, "|"))
	}
	return h
}

func TestEndToEndTCP(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	s := h.mustOpen(t, trans)
	suite(t, s, tgt)
}

func TestEndToEndPassword(t *testing.T) {
	h := newHarness(t, harnessOpts{transports: []string{"tcp:port=20000:29999,password=s3cret"}})
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	t.Run("wrong", func(t *testing.T) {
		_, err := h.open(h.serverSpec("password=wrong1"), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := h.open(h.serverSpec(""), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "requires a password") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("right", func(t *testing.T) {
		s, err := h.open(h.serverSpec("password=s3cret"), trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		suite(t, s, tgt)
	})
	if strings.Contains(h.logs.String(), "s3cret") {
		t.Fatal("the password appears in the server log")
	}
}

// A debugger attaches to the bridge the way radare2 and WinDbg do (break-in
// and RESET on the raw line), leaves, and a new one attaches and gets the
// state change.
func TestBridgeDebuggerReattach(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, tgt := h.addTarget("vm1", sim.Config{})
	s := h.mustOpen(t, trans)
	ln, err := net.Listen("unix", h.dir+"/bridge.sock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Bridge.Listen(ctx, ln, nil) }()
	defer func() {
		cancel()
		<-done
	}()
	for i := range 3 {
		c, err := net.Dial("unix", h.dir+"/bridge.sock")
		if err != nil {
			t.Fatal(err)
		}
		first := []byte{kd.BreakInByte}
		if i != 1 {
			first = append(first, kd.AppendControl(nil, kd.TypeReset, 0)...)
		}
		sc := simtest.NewLine(t, c).Attach(first)
		if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
			t.Fatalf("debugger %d: %v", i, sc)
		}
		// Ask for the version over the raw line with the ids a fresh
		// debugger uses, like radare2 does after its RESET.
		c.Close()
	}
	// And a full debugger afterwards still works.
	dh, _ := dialHost(t, h.dir+"/bridge.sock")
	tctx := ctxFor(t, 20*time.Second)
	if _, err := dh.Attach(tctx); err != nil {
		t.Fatal(err)
	}
	if v, err := dh.Version(tctx); err != nil || v.KernBase != tgt.Layout().KernBase {
		t.Fatalf("version after re-attach: %+v %v", v, err)
	}
}

func TestClientKilledSecondTakesOver(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, tgt := h.addTarget("vm1", sim.Config{})
	s1 := h.mustOpen(t, trans)
	ctx := ctxFor(t, 30*time.Second)
	h1 := s1.attach(t, ctx)
	if _, err := h1.WriteVirtual(ctx, sim.DataBase, []byte("first client")); err != nil {
		t.Fatal(err)
	}
	s1.kill()
	// The server notices the dead client and frees the target; a second
	// client gets in.
	var s2 *session
	testkit.WaitFor(t, "a second client to open the target", func() bool {
		var err error
		s2, err = h.open(h.serverSpec(""), trans, client.Options{})
		return err == nil
	})
	h2 := s2.host(t, kd.HostOptions{})
	sc, err := h2.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("state %v", sc)
	}
	got, err := h2.ReadVirtual(ctx, sim.DataBase, 12)
	if err != nil || string(got) != "first client" {
		t.Fatalf("memory seen by the second client %q %v", got, err)
	}
	st := tgt.Stats()
	// One RESET: kdsrv's synchronisation when it opened the link, not one
	// per client.
	if st.Link.ResetsReceived != 1 || st.Link.Retransmits > 1 || st.Connections != 1 {
		t.Fatalf("target saw %+v over %d connections", st.Link, st.Connections)
	}
}

func TestParallelTargetsAndInUse(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	transA, tgtA := h.addTarget("vmA", sim.Config{})
	transB, tgtB := h.addTarget("vmB", sim.Config{Build: 9600})
	sa := h.mustOpen(t, transA)
	sb := h.mustOpen(t, transB)
	// A third client for a busy target is refused.
	_, err := h.open(h.serverSpec(""), transA, client.Options{})
	if code, _ := wire.ErrorCode(errors.Unwrap(err)); err == nil || (code != wire.InUse && !strings.Contains(err.Error(), "in use")) {
		t.Fatalf("third client: %v", err)
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		s   *session
		tgt *sim.Machine
	}{{sa, tgtA}, {sb, tgtB}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxFor(t, 30*time.Second)
			hh := p.s.host(t, kd.HostOptions{})
			if _, err := hh.Attach(ctx); err != nil {
				t.Error(err)
				return
			}
			for i := range 50 {
				v, err := hh.Version(ctx)
				if err != nil || v.MinorVersion != p.tgt.Config().Build {
					t.Errorf("call %d: %+v %v", i, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// -takeover gets in anyway and the first owner is told.
	s3, err := h.open(h.serverSpec(""), transA, client.Options{TakeOver: true})
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	s3.attach(t, ctxFor(t, 20*time.Second))
	select {
	case <-sa.Done():
		err := sa.Err()
		if err == nil || !strings.Contains(err.Error(), "took this target over") {
			t.Fatalf("first owner's session ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first owner was not told about the takeover")
	}
}

func TestAllowList(t *testing.T) {
	h := newHarness(t, harnessOpts{noAllowDir: true})
	trans, _ := h.addTarget("vm1", sim.Config{})
	_, err := h.open(h.serverSpec(""), trans, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "-allow") {
		t.Fatalf("target outside the allow-list: %v", err)
	}
	h2 := newHarness(t, harnessOpts{allow: []string{h.dir + "/vm1.sock"}, noAllowDir: true})
	if _, err := h2.open(h2.serverSpec(""), trans, client.Options{}); err != nil {
		t.Fatalf("with -allow: %v", err)
	}
}

func TestSilentClientDropped(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(c *server.Config) { c.HandshakeTimeout = 200 * time.Millisecond }})
	c := dialTCP(t, h.srv.Addrs()[0].String())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server did not close a silent connection: %v", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("closed before the handshake deadline")
	}
}

func TestOversizedFrameRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := dialTCP(t, h.srv.Addrs()[0].String())
	hdr := []byte{wire.Magic, byte(wire.TypeHello), 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[4:], 1<<30)
	c.Write(hdr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
	// The server says why (an Error frame) and closes.
	if len(b) < wire.HeaderSize || b[1] != byte(wire.TypeError) {
		t.Fatalf("reply % x", b)
	}
}

func TestDump1MiB(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, _ := h.addTarget("vm1", sim.Config{})
	s := h.mustOpen(t, trans)
	var out, buf bytes.Buffer
	cm := &client.Commander{Host: s.host(t, kd.HostOptions{}), Out: &out}
	addr := sim.DataBase + 0x200000
	if err := cm.Dump(ctxFor(t, 60*time.Second), addr, 1<<20, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), patternBytes(addr, 1<<20)) {
		t.Fatal("dump differs from the target's memory")
	}
	if !strings.Contains(out.String(), "dumped 1048576 bytes") {
		t.Fatalf("summary %q", out.String())
	}
}

// A target that is already stopped sends its state change the moment the
// server opens the link; it must reach the client after Opened, never
// before it (which would break the client's Open).
func TestOpenHaltedTarget(t *testing.T) {
	// The server logs "target ... opened" between starting the link and
	// answering Opened: a slow log widens that window, so the state change
	// is sure to be waiting before Opened goes out.
	h := newHarness(t, harnessOpts{mutate: func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(slowWriter{}, nil))
	}})
	for i := range 3 {
		trans, _ := h.addTarget(fmt.Sprintf("halted%d", i), sim.Config{StartHalted: true})
		s, err := h.open(h.serverSpec(""), trans, client.Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		hh := s.host(t, kd.HostOptions{})
		if _, err := hh.Attach(ctxFor(t, 20*time.Second)); err != nil {
			t.Fatalf("attach %d: %v", i, err)
		}
		s.close()
	}
}

// slowWriter discards log lines, pausing on the one that says a target
// link was opened.
type slowWriter struct{}

func (slowWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("opened (")) {
		time.Sleep(200 * time.Millisecond)
	}
	return len(p), nil
}

// A client that has a password stops when the server never asks for it:
// that server proved nothing and may not be the kdsrv the user means.
func TestPasswordNotAskedRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, _ := h.addTarget("vm1", sim.Config{})
	_, err := h.open(h.serverSpec("password=abc123"), trans, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "did not ask for the password") {
		t.Fatalf("got %v", err)
	}
}
