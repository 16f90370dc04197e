package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim/simtest"
	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs tgt on conn in the background; the returned func stops it.
func serve(t testing.TB, tgt *Machine, conn io.ReadWriteCloser) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tgt.Serve(ctx, conn) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newHost(t testing.TB, conn io.ReadWriteCloser, opts kd.HostOptions) *kd.Host {
	l := kd.NewHostLink(conn, kd.Config{})
	t.Cleanup(func() { l.Close() })
	return kd.NewHost(l, opts)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exerciseTarget runs the acceptance sequence of a debugger against tgt.
func exerciseTarget(t *testing.T, tgt *Machine, h *kd.Host) {
	ctx := ctxT(t)
	lo := tgt.Layout()
	sc, err := h.Attach(ctx)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if sc.NewState != uint32(kd.StateException) || sc.Exception.ExceptionCode != kd.StatusBreakpoint || sc.ProgramCounter != lo.BreakAddress {
		t.Fatalf("state change %v", sc)
	}
	if got := sc.Control.Instructions(); len(got) != 16 || got[0] != 0xcc || got[1] != 0xc3 {
		t.Fatalf("instruction stream % x", got)
	}
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.MachineType != kd.MachineAMD64 || v.MinorVersion != tgt.cfg.Build || v.KernBase != lo.KernBase ||
		v.PsLoadedModuleList != lo.PsLoadedModuleList || v.DebuggerDataList != lo.DebuggerDataList || v.ProtocolVersion != 6 {
		t.Fatalf("version %+v", v)
	}
	// The debugger data block is reachable the way debuggers find it.
	head, err := h.ReadVirtual(ctx, v.DebuggerDataList, 8)
	if err != nil {
		t.Fatal(err)
	}
	kdbgAddr := le64(head)
	blk, err := h.ReadVirtual(ctx, kdbgAddr, kd.DebuggerDataSize)
	if err != nil {
		t.Fatal(err)
	}
	dd, err := kd.DecodeDebuggerData(blk)
	if err != nil || dd.KernBase != lo.KernBase || dd.PsLoadedModuleList != lo.PsLoadedModuleList || string(blk[0x10:0x14]) != "KDBG" {
		t.Fatalf("KDBG block %+v %v", dd, err)
	}
	c, err := h.Context(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rip != lo.BreakAddress || c.SegCs != 0x10 || c.Rsp == 0 {
		t.Fatalf("context rip=%#x cs=%#x", c.Rip, c.SegCs)
	}
	// Write then read back.
	addr := DataBase + 0x1234
	data := []byte("written by the debugger")
	if n, err := h.WriteVirtual(ctx, addr, data); err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	got, err := h.ReadVirtual(ctx, addr-4, len(data)+8)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(PatternBytes(addr-4, 4), data...), PatternBytes(addr+uint64(len(data)), 4)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("read back % x\nwant % x", got, want)
	}
	// Continue, then break in again: a new state change.
	before := tgt.Stats().StateChanges
	if err := h.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "target running", func() bool { return !tgt.Halted() })
	if _, err := h.Version(ctx); !errors.Is(err, kd.ErrTargetRunning) {
		t.Fatalf("call while running: %v", err)
	}
	sc, err = h.Break(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("after break: %v", sc)
	}
	testkit.WaitFor(t, "exactly one new state change", func() bool { return tgt.Stats().StateChanges == before+1 })
}

func le64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func TestTargetOverPipe(t *testing.T) {
	tgt := New(Config{})
	a, b := net.Pipe()
	serve(t, tgt, b)
	exerciseTarget(t, tgt, newHost(t, a, kd.HostOptions{}))
}

func TestTargetOverUnixSocket(t *testing.T) {
	tgt := New(Config{Build: 9600, ServicePack: 1})
	a, b := testkit.UnixPair(t)
	serve(t, tgt, b)
	exerciseTarget(t, tgt, newHost(t, a, kd.HostOptions{}))
}

// First contact the way different debuggers do it (docs/kd-protocol.md §1.7,
// §10): RESET only, break-in only, break-in then RESET, and a RESET burst
// with stray break-ins around it.
func TestFirstContactVariants(t *testing.T) {
	reset := kd.AppendControl(nil, kd.TypeReset, 0)
	cases := map[string][]byte{
		"break-in only":          {kd.BreakInByte},
		"break-in then reset":    append([]byte{kd.BreakInByte}, reset...),
		"reset burst and strays": append(append(append(append([]byte{kd.BreakInByte}, reset...), reset...), kd.BreakInByte), reset...),
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			tgt := New(Config{})
			a, b := net.Pipe()
			serve(t, tgt, b)
			rawHostSees(t, a, first)
		})
	}
	t.Run("reset only while halted", func(t *testing.T) {
		tgt := New(Config{StartHalted: true})
		a, b := net.Pipe()
		serve(t, tgt, b)
		rawHostSees(t, a, reset)
	})
}

// rawHostSees writes first on the line and expects a breakpoint state
// change back, read with a bare decoder (no host link), then ACKs it.
func rawHostSees(t *testing.T, c net.Conn, first []byte) {
	t.Helper()
	l := simtest.NewLine(t, c)
	defer l.Close()
	if sc := l.Attach(first); sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("bad state change %v", sc)
	}
}

func TestTargetSurvivesDebuggerReconnect(t *testing.T) {
	tgt := New(Config{})
	a, b := net.Pipe()
	stop := serve(t, tgt, b)
	h := newHost(t, a, kd.HostOptions{})
	ctx := ctxT(t)
	if _, err := h.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteVirtual(ctx, DataBase, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	h.Link().Close() // the debugger goes away while the target is halted
	stop()
	if !tgt.Halted() {
		t.Fatal("target resumed when the debugger left")
	}
	a2, b2 := net.Pipe()
	serve(t, tgt, b2)
	h2 := newHost(t, a2, kd.HostOptions{})
	sc, err := h2.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
		t.Fatalf("state %v", sc)
	}
	got, err := h2.ReadVirtual(ctx, DataBase, 3)
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("memory after reconnect: % x %v", got, err)
	}
	if s := tgt.Stats(); s.Connections != 2 {
		t.Fatalf("connections %d", s.Connections)
	}
}

func TestDbgPrintWhileRunning(t *testing.T) {
	tgt := New(Config{PrintEvery: 20 * time.Millisecond})
	a, b := net.Pipe()
	serve(t, tgt, b)
	var prints simtest.Prints
	h := newHost(t, a, kd.HostOptions{OnPrint: prints.OnPrint})
	ctx := ctxT(t)
	if _, err := h.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	h.WaitStateChange(wctx) // prints arrive meanwhile
	cancel()
	if ok, n, first := prints.Ticking(); !ok {
		t.Fatalf("prints %d, first %q", n, first)
	}
	if _, err := h.Break(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBreakpointsContextAndControlSpace(t *testing.T) {
	tgt := New(Config{Processors: 2})
	a, b := net.Pipe()
	serve(t, tgt, b)
	h := newHost(t, a, kd.HostOptions{})
	ctx := ctxT(t)
	sc, err := h.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.NumberProcessors != 2 {
		t.Fatalf("processors %d", sc.NumberProcessors)
	}
	bpAddr := tgt.Layout().KernBase + 0x5000
	rep, err := h.Call(ctx, kd.NewWriteBreakPoint(bpAddr))
	if err != nil || rep.ReturnStatus != kd.StatusSuccess || rep.BreakPoint().Handle == 0 {
		t.Fatalf("write breakpoint: %v %v", rep, err)
	}
	if got := tgt.Breakpoints(); got[rep.BreakPoint().Handle] != bpAddr {
		t.Fatalf("breakpoints %v", got)
	}
	if r, err := h.Call(ctx, kd.NewRestoreBreakPoint(rep.BreakPoint().Handle)); err != nil || r.ReturnStatus != 0 || len(tgt.Breakpoints()) != 0 {
		t.Fatalf("restore: %v %v", r, err)
	}
	// SetContext on CPU 1, read back with GetContextEx.
	c, err := h.Context(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Rax = 0xdeadbeefcafe
	if err := h.SetContext(ctx, 1, &c); err != nil {
		t.Fatal(err)
	}
	r, err := h.Call(ctx, kd.NewGetContextEx(1, 0x78, 8)) // Rax
	if err != nil || le64(r.Extra) != 0xdeadbeefcafe || r.ContextEx().BytesCopied != 8 {
		t.Fatalf("GetContextEx: %v % x %v", r, r.Extra, err)
	}
	// Control space index 0 is the KPCR pointer of that CPU.
	r, err = h.Call(ctx, kd.NewReadControlSpace(1, 0, 8))
	if err != nil || le64(r.Extra) != KPCRBase+KPCRStride {
		t.Fatalf("control space: %v %v", r, err)
	}
	// An unmapped read returns a failure status.
	if _, err := h.ReadVirtual(ctx, 0x1000, 16); err == nil {
		t.Fatal("read of unmapped memory succeeded")
	}
	// An unsupported API is answered with STATUS_UNSUCCESSFUL.
	if r, err := h.Call(ctx, kd.Manipulate{API: kd.APICauseBugCheck + 0x20}); err != nil || r.ReturnStatus != kd.StatusUnsuccessful {
		t.Fatalf("unknown api: %v %v", r, err)
	}
	// Single step reports a single-step exception one byte further.
	if err := h.Resume(ctx, kd.Continue2Args{ContinueStatus: kd.DbgContinue, TraceFlag: 1}); err != nil {
		t.Fatal(err)
	}
	sc, err = h.WaitStateChange(ctx)
	if err != nil || sc.Exception.ExceptionCode != kd.StatusSingleStep || sc.ProgramCounter != tgt.Layout().BreakAddress+1 {
		t.Fatalf("single step: %v %v", sc, err)
	}
}

func TestGarbageNeverCrashesTarget(t *testing.T) {
	tgt := New(Config{})
	a, b := net.Pipe()
	serve(t, tgt, b)
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i*7 + i>>8)
	}
	// A data packet with a valid checksum but a nonsense manipulate body.
	junk = append(junk, kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: kd.InitialPacketID, Payload: []byte{1, 2, 3}})...)
	a.SetWriteDeadline(time.Now().Add(10 * time.Second))
	go io.Copy(io.Discard, a)
	if _, err := a.Write(junk); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a2, b2 := net.Pipe()
	serve(t, tgt, b2)
	exerciseTarget(t, tgt, newHost(t, a2, kd.HostOptions{}))
}
