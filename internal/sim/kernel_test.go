package sim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim/simtest"
)

// plugRaw connects a raw line to the strict target tgt.
func plugRaw(t *testing.T, tgt *Machine) (*simtest.Line, func()) {
	t.Helper()
	a, b := net.Pipe()
	stop := serve(t, tgt, b)
	return simtest.NewLine(t, a), func() { a.Close(); stop() }
}

// plugHalted boots a machine that starts halted, plugs a raw line into it
// and takes the boot's first stop (id0 with the sync bit), as a debugger
// attaching for the first time does.
func plugHalted(t *testing.T) (*Machine, *simtest.Line) {
	t.Helper()
	tgt := New(Config{StartHalted: true})
	r, unplug := plugRaw(t, tgt)
	t.Cleanup(unplug)
	r.Expect(kd.TypeStateChange64, id0|syncBit)
	r.Control(kd.TypeAcknowledge, id0)
	return tgt, r
}

// rebootAttached boots a running machine, plugs a raw line into it,
// breaks in and takes the stop (as a debugger attaching does), lets it run
// on and reboots it: its next packet is the new boot's first, with the
// sync bit.
func rebootAttached(t *testing.T) (*Machine, *simtest.Line) {
	t.Helper()
	tgt := New(Config{})
	r, unplug := plugRaw(t, tgt)
	t.Cleanup(unplug)
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id0|syncBit)
	r.Control(kd.TypeAcknowledge, id0)
	tgt.Reboot()
	return tgt, r
}

func version(t *testing.T, p kd.Packet) kd.Version {
	t.Helper()
	m, err := kd.DecodeManipulate(p.Payload)
	if err != nil || m.API != kd.APIGetVersion {
		t.Fatalf("not a GetVersion reply: %v %v", m, err)
	}
	return m.Version()
}

const (
	id0     = kd.InitialPacketID
	id1     = kd.InitialPacketID | 1
	syncBit = kd.SyncPacketID
)

// The ids continue across connections: a halted kernel keeps its streams
// when its debugger goes away, and a host that starts afresh at 0x80800000
// is taken for a retransmission.
func TestStrictIDsContinueAcrossConnections(t *testing.T) {
	tgt := New(Config{KernBase: 0xfffff80400000000})
	r, unplug := plugRaw(t, tgt)
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id0|syncBit) // first packet of the boot
	r.Control(kd.TypeAcknowledge, id0)
	r.Request(id0, kd.NewGetVersion())
	r.Expect(kd.TypeAcknowledge, id0)
	rep := r.Expect(kd.TypeStateManipulate, id1)
	if v := version(t, rep); v.KernBase != 0xfffff80400000000 {
		t.Fatalf("KernBase %#x", v.KernBase)
	}
	r.Control(kd.TypeAcknowledge, id1)
	// A barrier before the line drops: the kernel acknowledges the repeat
	// of the request (a duplicate) only once it has taken everything
	// before it, our ACK included. Without it the kernel may not have
	// read that ACK yet, and rightly sends its reply again on the next
	// connection.
	r.Request(id0, kd.NewGetVersion())
	r.Expect(kd.TypeAcknowledge, id0)
	unplug()

	// A new connection: the kernel expects 0x80800001 and sends 0x80800000.
	r, unplug = plugRaw(t, tgt)
	defer unplug()
	r.Request(id0, kd.NewGetVersion()) // a fresh host's first id: a duplicate
	r.Expect(kd.TypeAcknowledge, id0)
	r.Request(id1, kd.NewGetVersion())
	r.Expect(kd.TypeAcknowledge, id1) // nothing was sent for the duplicate
	r.Expect(kd.TypeStateManipulate, id0)
	r.Control(kd.TypeAcknowledge, id0)
	if st := tgt.Stats(); st.Link.Duplicates != 2 || st.Requests != 2 || !tgt.Halted() {
		t.Fatalf("stats %+v, halted %v", st, tgt.Halted())
	}
}

// BdLib's rules on what a halted kernel receives: an id other than
// 0x80800000/1 gets RESEND, a packet of another type is ACKed and
// ignored, a corrupt packet gets RESEND, a RESEND makes it report the
// stop again.
func TestStrictHaltedReceiveRules(t *testing.T) {
	_, r := plugHalted(t)

	r.Request(0x12345678, kd.NewGetVersion())
	r.Expect(kd.TypeResend, 0)
	r.Write(kd.AppendPacket(nil, kd.Packet{Type: kd.TypeDebugIO, ID: id0, Payload: make([]byte, 16)}))
	r.Expect(kd.TypeAcknowledge, id0)
	gv := kd.NewGetVersion()
	bad := kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: id0, Payload: gv.Append(nil)})
	bad[len(bad)-1] = 0 // no trailing byte
	r.Write(bad)
	r.Expect(kd.TypeResend, 0)
	r.Control(kd.TypeResend, 0)
	r.Expect(kd.TypeStateChange64, id1) // the stop again, as a new packet
	r.Control(kd.TypeAcknowledge, id1)
	// The wrongly typed packet did not advance the expected id.
	r.Request(id0, kd.NewGetVersion())
	r.Expect(kd.TypeAcknowledge, id0)
	r.Expect(kd.TypeStateManipulate, id0)
}

// A running kernel consumes a RESET without answering it (the break-in
// that follows reports the stop on the old streams); RESET while halted
// restarts both streams.
func TestStrictResetRunningAndHalted(t *testing.T) {
	tgt := New(Config{})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.Control(kd.TypeReset, 0)
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id0|syncBit) // the RESET was ignored: still the boot's first packet
	r.Control(kd.TypeReset, 0)
	r.Expect(kd.TypeReset, 0)
	r.Expect(kd.TypeStateChange64, id0) // restarted streams: no sync bit
	r.Control(kd.TypeAcknowledge, id0)
	r.Request(id0, kd.NewGetVersion())
	r.Expect(kd.TypeAcknowledge, id0)
	r.Expect(kd.TypeStateManipulate, id1)
	r.Control(kd.TypeAcknowledge, id1)
	if st := tgt.Stats().Link; st.ResetsReceived != 1 || st.Dropped != 1 {
		t.Fatalf("link stats %+v", st)
	}
}

// With AnswerResetWhileRunning (some VM stubs) a running target answers
// RESET and restarts its streams.
func TestStrictAnswerResetWhileRunning(t *testing.T) {
	tgt := New(Config{AnswerResetWhileRunning: true})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.Control(kd.TypeReset, 0)
	r.Expect(kd.TypeReset, 0)
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id0)
}

// A reboot loads the kernel at a new KernBase, forgets what was written,
// and restarts the id streams: the first packet carries the sync bit.
func TestStrictReboot(t *testing.T) {
	tgt, r := plugHalted(t)
	r.Request(id0, kd.NewGetVersion())
	old := version(t, r.NextData())
	r.Control(kd.TypeAcknowledge, id1)
	tgt.Memory().Write(DataBase, []byte("old boot"))

	tgt.Reboot()
	sc := r.NextData() // StartHalted: the new boot stops at once
	if sc.Type != kd.TypeStateChange64 || sc.ID != id0|syncBit {
		t.Fatalf("after the reboot: %v id %#x", sc.Type, sc.ID)
	}
	r.Control(kd.TypeAcknowledge, id0)
	r.Request(id0, kd.NewGetVersion())
	nv := version(t, r.NextData())
	if nv.KernBase == old.KernBase || nv.KernBase != tgt.Layout().KernBase || nv.PsLoadedModuleList == old.PsLoadedModuleList {
		t.Fatalf("KernBase %#x after the reboot, %#x before (layout %#x)", nv.KernBase, old.KernBase, tgt.Layout().KernBase)
	}
	if tgt.Boot() != 2 || tgt.Stats().Boots != 2 {
		t.Fatalf("boot %d", tgt.Boot())
	}
	got := make([]byte, 8)
	tgt.Memory().Read(DataBase, got)
	if string(got) == "old boot" {
		t.Fatal("memory survived the reboot")
	}
}

// A DbgPrint nobody acknowledges exhausts its budget: the kernel decides
// no debugger is present, stops printing and restarts its streams, so the
// next packet carries the sync bit again.
func TestStrictPrintBudget(t *testing.T) {
	tgt := New(Config{PrintEvery: 5 * time.Millisecond, PrintRetries: 2, AckTimeout: 10 * time.Millisecond})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	p := r.NextData()
	if p.Type != kd.TypeDebugIO || p.ID != id0|syncBit {
		t.Fatalf("first print %v id %#x", p.Type, p.ID)
	}
	r.Control(kd.TypeAcknowledge, id0)
	p = r.NextData()
	if p.ID != id1 {
		t.Fatalf("second print id %#x", p.ID)
	}
	// Leave it unacknowledged: 1 + 2 transmissions, then silence.
	for range 2 {
		if q := r.NextData(); q.ID != id1 {
			t.Fatalf("retransmission id %#x", q.ID)
		}
	}
	r.Write([]byte{kd.BreakInByte})
	if sc := r.NextData(); sc.Type != kd.TypeStateChange64 || sc.ID != id0|syncBit {
		t.Fatalf("after the budget ran out: %v id %#x", sc.Type, sc.ID)
	}
}

// The machine keeps running between connections under an endpoint: a
// strict target behind Listen keeps its state while nobody is connected.
func TestStrictPowerAcrossListen(t *testing.T) {
	tgt := New(Config{})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Listen(ctx, tgt, NetworkUnix, dir+"/k.sock", PortOptions{Ready: func(a string) { ready <- a }})
	}()
	<-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	dial := func() *simtest.Line {
		c, err := net.Dial("unix", dir+"/k.sock")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return simtest.NewLine(t, c)
	}
	r := dial()
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id0|syncBit)
	r.Control(kd.TypeAcknowledge, id0)
	r.Close()
	// The next debugger sends RESET, as every real one does.
	r = dial()
	r.Control(kd.TypeReset, 0)
	r.Expect(kd.TypeReset, 0)
	r.Expect(kd.TypeStateChange64, id0)
}

// A running machine that reboots announces the new boot with a DbgPrint:
// its first packet, with the sync bit, naming the new kernel base.
func TestStrictRebootAnnounces(t *testing.T) {
	tgt, r := rebootAttached(t)
	p := r.NextData()
	if p.Type != kd.TypeDebugIO || p.ID != id0|syncBit {
		t.Fatalf("first packet of the new boot: %v id %#x", p.Type, p.ID)
	}
	want := fmt.Sprintf("boot 2, kernel at %#x", tgt.Layout().KernBase)
	if !strings.Contains(string(p.Payload), want) {
		t.Fatalf("banner %q; want %q", p.Payload, want)
	}
	r.Control(kd.TypeAcknowledge, id0)
	r.Write([]byte{kd.BreakInByte})
	r.Expect(kd.TypeStateChange64, id1)
}

// A break-in that comes in the same read as the ACK the kernel was
// waiting for (or as the Continue that resumed it) is still in the UART
// when the kernel runs again: it stops the kernel. A kdsrv that breaks in
// as soon as it has acknowledged a rebooted kernel's first print writes
// exactly that.
func TestStrictBreakInRightBehindAck(t *testing.T) {
	t.Run("behind the ACK of a print", func(t *testing.T) {
		_, r := rebootAttached(t)
		r.Expect(kd.TypeDebugIO, id0|syncBit)
		r.Write(append(kd.AppendControl(nil, kd.TypeAcknowledge, id0), kd.BreakInByte))
		r.Expect(kd.TypeStateChange64, id1)
	})
	t.Run("behind a Continue", func(t *testing.T) {
		tgt, r := plugHalted(t)
		c := kd.NewContinue(kd.StatusSuccess)
		cont := kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: id0, Payload: c.Append(nil)})
		r.Write(append(cont, kd.BreakInByte))
		r.Expect(kd.TypeAcknowledge, id0)
		r.Expect(kd.TypeStateChange64, id1)
		r.Control(kd.TypeAcknowledge, id1)
		if !tgt.Halted() {
			t.Fatal("the machine runs after the break-in")
		}
	})
}
