package sim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/kd"
)

// rawLine is a bare host end of a KDCOM line: it writes bytes and reads
// frames, with no link layer, so a test sees every id the kernel uses.
type rawLine struct {
	t   *testing.T
	c   net.Conn
	dec kd.Decoder
	buf []byte
}

// plugRaw connects a raw line to the strict target tgt.
func plugRaw(t *testing.T, tgt *Machine) (*rawLine, func()) {
	t.Helper()
	a, b := net.Pipe()
	stop := serve(t, tgt, b)
	r := &rawLine{t: t, c: a, buf: make([]byte, 4096)}
	return r, func() { a.Close(); stop() }
}

func (r *rawLine) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawLine) control(typ kd.PacketType, id uint32) { r.write(kd.AppendControl(nil, typ, id)) }

func (r *rawLine) request(id uint32, req kd.Manipulate) {
	r.t.Helper()
	r.write(kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: id, Payload: req.Append(nil)}))
}

// next returns the next packet the kernel sends (control or data).
func (r *rawLine) next() kd.Packet {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if f, ok := r.dec.Next(); ok {
			if f.Kind == kd.FramePacket {
				p := f.Packet
				p.Payload = append([]byte(nil), p.Payload...)
				return p
			}
			continue
		}
		n, err := r.c.Read(r.buf)
		if err != nil {
			r.t.Fatalf("waiting for a packet from the kernel: %v", err)
		}
		r.dec.Feed(r.buf[:n])
	}
}

// expect reads the next packet and checks its type and id.
func (r *rawLine) expect(typ kd.PacketType, id uint32) kd.Packet {
	r.t.Helper()
	p := r.next()
	if p.Type != typ || p.ID != id {
		r.t.Fatalf("kernel sent %v id %#x; want %v id %#x", p.Type, p.ID, typ, id)
	}
	return p
}

// nextData skips control packets and returns the next data packet.
func (r *rawLine) nextData() kd.Packet {
	r.t.Helper()
	for {
		if p := r.next(); !p.Type.IsControl() {
			return p
		}
	}
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
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id0|syncBit) // first packet of the boot
	r.control(kd.TypeAcknowledge, id0)
	r.request(id0, kd.NewGetVersion())
	r.expect(kd.TypeAcknowledge, id0)
	rep := r.expect(kd.TypeStateManipulate, id1)
	if v := version(t, rep); v.KernBase != 0xfffff80400000000 {
		t.Fatalf("KernBase %#x", v.KernBase)
	}
	r.control(kd.TypeAcknowledge, id1)
	unplug()

	// A new connection: the kernel expects 0x80800001 and sends 0x80800000.
	r, unplug = plugRaw(t, tgt)
	defer unplug()
	r.request(id0, kd.NewGetVersion()) // a fresh host's first id: a duplicate
	r.expect(kd.TypeAcknowledge, id0)
	r.request(id1, kd.NewGetVersion())
	r.expect(kd.TypeAcknowledge, id1) // nothing was sent for the duplicate
	r.expect(kd.TypeStateManipulate, id0)
	r.control(kd.TypeAcknowledge, id0)
	if st := tgt.Stats(); st.Link.Duplicates != 1 || st.Requests != 2 || !tgt.Halted() {
		t.Fatalf("stats %+v, halted %v", st, tgt.Halted())
	}
}

// BdLib's rules on what a halted kernel receives: an id other than
// 0x80800000/1 gets RESEND, a packet of another type is ACKed and
// ignored, a corrupt packet gets RESEND, a RESEND makes it report the
// stop again.
func TestStrictHaltedReceiveRules(t *testing.T) {
	tgt := New(Config{StartHalted: true})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.expect(kd.TypeStateChange64, id0|syncBit)
	r.control(kd.TypeAcknowledge, id0)

	r.request(0x12345678, kd.NewGetVersion())
	r.expect(kd.TypeResend, 0)
	r.write(kd.AppendPacket(nil, kd.Packet{Type: kd.TypeDebugIO, ID: id0, Payload: make([]byte, 16)}))
	r.expect(kd.TypeAcknowledge, id0)
	gv := kd.NewGetVersion()
	bad := kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: id0, Payload: gv.Append(nil)})
	bad[len(bad)-1] = 0 // no trailing byte
	r.write(bad)
	r.expect(kd.TypeResend, 0)
	r.control(kd.TypeResend, 0)
	r.expect(kd.TypeStateChange64, id1) // the stop again, as a new packet
	r.control(kd.TypeAcknowledge, id1)
	// The wrongly typed packet did not advance the expected id.
	r.request(id0, kd.NewGetVersion())
	r.expect(kd.TypeAcknowledge, id0)
	r.expect(kd.TypeStateManipulate, id0)
}

// A running kernel consumes a RESET without answering it (the break-in
// that follows reports the stop on the old streams); RESET while halted
// restarts both streams.
func TestStrictResetRunningAndHalted(t *testing.T) {
	tgt := New(Config{})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.control(kd.TypeReset, 0)
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id0|syncBit) // the RESET was ignored: still the boot's first packet
	r.control(kd.TypeReset, 0)
	r.expect(kd.TypeReset, 0)
	r.expect(kd.TypeStateChange64, id0) // restarted streams: no sync bit
	r.control(kd.TypeAcknowledge, id0)
	r.request(id0, kd.NewGetVersion())
	r.expect(kd.TypeAcknowledge, id0)
	r.expect(kd.TypeStateManipulate, id1)
	r.control(kd.TypeAcknowledge, id1)
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
	r.control(kd.TypeReset, 0)
	r.expect(kd.TypeReset, 0)
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id0)
}

// A reboot loads the kernel at a new KernBase, forgets what was written,
// and restarts the id streams: the first packet carries the sync bit.
func TestStrictReboot(t *testing.T) {
	tgt := New(Config{StartHalted: true})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.expect(kd.TypeStateChange64, id0|syncBit)
	r.control(kd.TypeAcknowledge, id0)
	r.request(id0, kd.NewGetVersion())
	old := version(t, r.nextData())
	r.control(kd.TypeAcknowledge, id1)
	tgt.Memory().Write(DataBase, []byte("old boot"))

	tgt.Reboot()
	sc := r.nextData() // StartHalted: the new boot stops at once
	if sc.Type != kd.TypeStateChange64 || sc.ID != id0|syncBit {
		t.Fatalf("after the reboot: %v id %#x", sc.Type, sc.ID)
	}
	r.control(kd.TypeAcknowledge, id0)
	r.request(id0, kd.NewGetVersion())
	nv := version(t, r.nextData())
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
	p := r.nextData()
	if p.Type != kd.TypeDebugIO || p.ID != id0|syncBit {
		t.Fatalf("first print %v id %#x", p.Type, p.ID)
	}
	r.control(kd.TypeAcknowledge, id0)
	p = r.nextData()
	if p.ID != id1 {
		t.Fatalf("second print id %#x", p.ID)
	}
	// Leave it unacknowledged: 1 + 2 transmissions, then silence.
	for range 2 {
		if q := r.nextData(); q.ID != id1 {
			t.Fatalf("retransmission id %#x", q.ID)
		}
	}
	r.write([]byte{kd.BreakInByte})
	if sc := r.nextData(); sc.Type != kd.TypeStateChange64 || sc.ID != id0|syncBit {
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
	dial := func() *rawLine {
		c, err := net.Dial("unix", dir+"/k.sock")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &rawLine{t: t, c: c, buf: make([]byte, 4096)}
	}
	r := dial()
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id0|syncBit)
	r.control(kd.TypeAcknowledge, id0)
	r.c.Close()
	// The next debugger sends RESET, as every real one does.
	r = dial()
	r.control(kd.TypeReset, 0)
	r.expect(kd.TypeReset, 0)
	r.expect(kd.TypeStateChange64, id0)
}

// A running machine that reboots announces the new boot with a DbgPrint:
// its first packet, with the sync bit, naming the new kernel base.
func TestStrictRebootAnnounces(t *testing.T) {
	tgt := New(Config{})
	r, unplug := plugRaw(t, tgt)
	defer unplug()
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id0|syncBit)
	r.control(kd.TypeAcknowledge, id0)
	tgt.Reboot()
	p := r.nextData()
	if p.Type != kd.TypeDebugIO || p.ID != id0|syncBit {
		t.Fatalf("first packet of the new boot: %v id %#x", p.Type, p.ID)
	}
	want := fmt.Sprintf("boot 2, kernel at %#x", tgt.Layout().KernBase)
	if !strings.Contains(string(p.Payload), want) {
		t.Fatalf("banner %q; want %q", p.Payload, want)
	}
	r.control(kd.TypeAcknowledge, id0)
	r.write([]byte{kd.BreakInByte})
	r.expect(kd.TypeStateChange64, id1)
}
