package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	kdclient "kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/readahead"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

// raHarness is a kdsrv on loopback whose target links are in-memory pipes
// to simulated targets (one per trans= path).
type raHarness struct {
	*testServer
	t    testing.TB
	mu   sync.Mutex
	sims map[string]*sim.Machine
	cfg  sim.Config
}

func newRAHarness(t testing.TB, cfg sim.Config) *raHarness {
	t.Helper()
	h := &raHarness{t: t, sims: map[string]*sim.Machine{}, cfg: cfg}
	h.testServer = startTestServer(t, testServerOptions{
		target: func(ts *spec.Target) (func(context.Context, net.Conn), error) {
			tgt := h.sim(path.Base(ts.Port))
			return func(ctx context.Context, c net.Conn) { _ = tgt.Serve(ctx, c) }, nil
		},
	})
	return h
}

func (h *raHarness) sim(name string) *sim.Machine {
	h.mu.Lock()
	defer h.mu.Unlock()
	tgt := h.sims[name]
	if tgt == nil {
		tgt = sim.New(h.cfg)
		h.sims[name] = tgt
	}
	return tgt
}

// spec is the -k value for the simulated target name.
func (h *raHarness) spec(name string) *spec.Connect {
	return h.connect(h.t, "com:pipe,port=/kdsim/"+name)
}

// rawClient speaks the wire protocol directly, to see exactly what the
// server sends: replies, pushes and state changes.
type rawClient struct {
	*wireClient
	sent   uint32 // invalidating KD packets sent (the read-ahead stamp)
	tgt    *sim.Machine
	pushes int
	// verify checks each push that is current against the target's memory.
	verify bool
	// waitIdle waits until the server's prefetcher has nothing in flight.
	waitIdle func()
}

func (h *raHarness) rawOpen(name string, readAhead bool) *rawClient {
	h.t.Helper()
	rc := &rawClient{wireClient: openWireClient(h.t, h.spec(name)), tgt: h.sim(name), verify: true}
	// The server breaks into the target when it opens the link: its state
	// change reaches the client once (forwarded, or given after Opened).
	rc.waitState()
	if readAhead {
		if err := rc.conn.Wire().Send(wire.TypeControl, wire.EncodeControl(wire.Control{ID: 1, Command: wire.CmdSetOption, Body: []byte("readahead=on")})); err != nil {
			h.t.Fatal(err)
		}
		f := rc.wireClient.next(func(f wire.Frame) bool { return f.Type == wire.TypeControl }, "the answer to readahead=on")
		r, err := wire.DecodeControl(f.Payload)
		if err != nil || r.Status != wire.OK {
			h.t.Fatalf("readahead=on: %v %v %s", err, r.Status, r.Body)
		}
	}
	return rc
}

// next returns the next KD frame, checking pushes on the way. Pushes are
// progress: the time-out is for silence. (A halted target that is sent
// prefetches without a pause answers a break-in only once they stop, and
// the window may be up to 256 chunks.)
func (rc *rawClient) next() (kd.PacketType, []byte) {
	rc.t.Helper()
	var pt uint16
	var payload []byte
	rc.wireClient.next(func(f wire.Frame) bool {
		if f.Type != wire.TypeKD {
			return false
		}
		var err error
		pt, payload, err = wire.DecodeKD(f.Payload)
		if err != nil {
			rc.t.Fatal(err)
		}
		if pt == readahead.PacketType {
			rc.checkPush(payload)
			return false
		}
		return true
	}, "KD packet")
	return kd.PacketType(pt), payload
}

// checkPush verifies that a push stamped with the current count carries
// exactly what the target would answer now.
func (rc *rawClient) checkPush(payload []byte) {
	rc.t.Helper()
	stamp, rep, err := readahead.Decode(payload)
	if err != nil {
		rc.t.Fatalf("bad push: %v", err)
	}
	rc.pushes++
	if stamp != rc.sent || !rc.verify {
		return
	}
	want := rc.tgt.Memory().ReadReply(rep) // the reply the machine gives, from its memory
	if !sameRead(rep, want) {
		rc.t.Fatalf("push for %#x (stamp %d) is stale: got %s, target has %s", rep.Memory().Address, stamp, describeRead(rep), describeRead(want))
	}
}

func (rc *rawClient) waitState() kd.StateChange {
	rc.t.Helper()
	for {
		pt, payload := rc.next()
		if pt == kd.TypeStateChange64 {
			sc, err := kd.DecodeStateChange(payload)
			if err != nil {
				rc.t.Fatal(err)
			}
			return sc
		}
	}
}

func (rc *rawClient) send(m kd.Manipulate) {
	rc.t.Helper()
	p := m.Append(nil)
	if readahead.Invalidates(kd.TypeStateManipulate, p) {
		rc.sent++
	}
	if err := rc.conn.Wire().SendKD(uint16(kd.TypeStateManipulate), p); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) call(m kd.Manipulate) kd.Manipulate {
	rc.t.Helper()
	rc.send(m)
	for {
		pt, payload := rc.next()
		if pt == kd.TypeStateChange64 {
			continue // a repeat of the current state
		}
		if pt != kd.TypeStateManipulate {
			rc.t.Fatalf("got %v while waiting for the %v reply", pt, m.API)
		}
		rep, err := kd.DecodeManipulate(payload)
		if err != nil {
			rc.t.Fatal(err)
		}
		if !kd.Matches(m, rep) {
			rc.t.Fatalf("reply %v does not match request %v at %#x", rep, m.API, m.Memory().Address)
		}
		return rep
	}
}

// read reads n bytes at addr and checks the reply against the target's
// memory as it is now.
func (rc *rawClient) read(addr uint64, n uint32) kd.Manipulate {
	rc.t.Helper()
	rep := rc.call(kd.NewReadVirtual(addr, n))
	want := rc.tgt.Memory().ReadReply(rep) // the reply the machine gives, from its memory
	if !sameRead(rep, want) {
		rc.t.Fatalf("read %d at %#x: got %s, target has %s", n, addr, describeRead(rep), describeRead(want))
	}
	return rep
}

func sameRead(a, b kd.Manipulate) bool {
	return bytes.Equal(a.Append(nil), b.Append(nil))
}

func describeRead(m kd.Manipulate) string {
	sum := 0
	for _, c := range m.Extra {
		sum += int(c)
	}
	return fmt.Sprintf("status=%#x actual=%d len=%d sum=%d head=% x", m.ReturnStatus, m.Memory().Actual, len(m.Extra), sum, m.Extra[:min(len(m.Extra), 24)])
}

// waitPrefetchIdle waits until every prefetch the server issued has been
// answered and no new one started for a while (the window is full).
func waitPrefetchIdle(t *testing.T, tg *target) {
	t.Helper()
	const quiet = 100 * time.Millisecond
	var last raStats
	var since time.Time
	testkit.WaitFor(t, "the read-ahead to go idle", func() bool {
		st := tg.readAheadStats()
		if st != last || st.Prefetches != st.Pushed+st.Discarded || since.IsZero() {
			last, since = st, time.Now()
			return false
		}
		return time.Since(since) >= quiet
	})
}

// waitPrefetched waits until the server has pushed at least n replies.
func waitPrefetched(t *testing.T, tg *target, n uint64) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("the read-ahead to push %d chunks", n), func() bool { return tg.readAheadStats().Pushed >= n })
}

// waitRunning waits until the target has resumed.
func waitRunning(t *testing.T, tgt *sim.Machine) {
	t.Helper()
	testkit.WaitFor(t, "the target to resume", func() bool { return !tgt.Halted() })
}

const chunk = kd.MaxManipulateData

func TestReadAheadSequentialDumpIsExact(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	rc := h.rawOpen("seq", true)
	base := sim.DataBase + 0x1000
	for i := range 40 {
		rc.read(base+uint64(i)*chunk, chunk)
	}
	st := h.findTarget("seq").readAheadStats()
	if st.Prefetches == 0 || st.Hits == 0 || st.Pushed == 0 {
		t.Fatalf("sequential reads were not read ahead: %+v", st)
	}
	if rc.pushes == 0 {
		t.Fatal("no push reached the client")
	}
}

// TestReadAheadWindowWidensOnCatchUp: a client whose sequential reads keep
// reaching kdsrv (here a raw client that answers nothing from pushes, as a
// bridge does when the pushes arrive too late for the link's
// bandwidth-delay product) makes kdsrv widen its window beyond the
// initial one, up to MaxWindow and no further.
func TestReadAheadWindowWidensOnCatchUp(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	rc := h.rawOpen("widen", true)
	base := sim.DataBase + 0x1000
	const reads = 40
	for i := range reads {
		rc.read(base+uint64(i)*chunk, chunk)
	}
	tg := h.findTarget("widen")
	// With the initial window kdsrv stops DefaultWindow chunks past the
	// client's position; widened, it goes on.
	waitPrefetched(t, tg, reads+readahead.DefaultWindow+8)
	st := tg.readAheadStats()
	if st.Widened == 0 {
		t.Fatalf("the window never widened: %+v", st)
	}
	tg.mu.Lock()
	ra := tg.ra
	tg.mu.Unlock()
	ra.mu.Lock()
	w := ra.window
	ra.mu.Unlock()
	if w != readahead.MaxWindow {
		t.Fatalf("window %d after %d catch-ups, want the cap %d", w, st.Widened, readahead.MaxWindow)
	}
}

func TestReadAheadOffByDefault(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	rc := h.rawOpen("off", false)
	for i := range 10 {
		rc.read(sim.DataBase+uint64(i)*chunk, chunk)
	}
	if st := h.findTarget("off").readAheadStats(); st != (raStats{}) {
		t.Fatalf("read-ahead ran without being enabled: %+v", st)
	}
	if rc.pushes != 0 {
		t.Fatalf("%d pushes to a client that did not ask", rc.pushes)
	}
}

func TestReadAheadShortReadsAtUnmappedEnd(t *testing.T) {
	t.Parallel()
	const size = 64 << 10
	h := newRAHarness(t, sim.Config{DataSize: size})
	rc := h.rawOpen("end", true)
	// A stream whose chunks are not page-aligned runs off the end of the
	// region: a short read, then failures.
	start := sim.DataBase + size - 6*chunk - 100
	for i := range 10 {
		rep := rc.read(start+uint64(i)*chunk, chunk)
		if i == 6 && (rep.Memory().Actual != 100 || rep.ReturnStatus != kd.StatusSuccess) {
			t.Fatalf("chunk %d at the end: %s, want a 100-byte short read", i, describeRead(rep))
		}
		if i > 6 && rep.ReturnStatus != kd.StatusUnsuccessful {
			t.Fatalf("chunk %d past the end: %s, want a failure", i, describeRead(rep))
		}
	}
}

// TestReadAheadNeverStale proves the cache never answers with data older
// than the last write, continue or state change.
func TestReadAheadNeverStale(t *testing.T) {
	t.Parallel()
	base := sim.DataBase + 0x40000
	cases := []struct {
		name   string
		change func(t *testing.T, rc *rawClient, addr uint64) // changes memory at addr
	}{
		{"WriteVirtual", func(t *testing.T, rc *rawClient, addr uint64) {
			rep := rc.call(kd.NewWriteVirtual(addr, bytes.Repeat([]byte{0xEE}, 64)))
			if rep.ReturnStatus != kd.StatusSuccess {
				t.Fatalf("write: %v", rep)
			}
		}},
		{"WriteBreakPoint", func(t *testing.T, rc *rawClient, addr uint64) {
			var m kd.Manipulate
			m.API = kd.APIWriteBreakPoint
			m.SetBreakPoint(kd.BreakPointArgs{Address: addr + 7})
			if rep := rc.call(m); rep.ReturnStatus != kd.StatusSuccess {
				t.Fatalf("breakpoint: %v", rep)
			}
		}},
		{"ContinueThenBreak", func(t *testing.T, rc *rawClient, addr uint64) {
			rc.send(kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue}))
			waitRunning(t, rc.tgt)
			// The target runs and changes its memory by itself.
			rc.tgt.Memory().Write(addr, bytes.Repeat([]byte{0xC3}, 100))
			if err := rc.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
				t.Fatal(err)
			}
			rc.waitState()
		}},
		{"StateChangeOnly", func(t *testing.T, rc *rawClient, addr uint64) {
			// Memory changes behind the debugger's back and the target
			// reports a state change (here: a halted target answering a
			// break-in) without any debugger packet: the server must
			// drop what it prefetched.
			rc.verify = false // pushes already in flight are stale by design
			// A halted kernel answers a break-in only when the line then
			// stays quiet (as ReactOS's receive loop does): let the
			// prefetcher fill its window first, or the break-in is lost
			// among its requests, as it would be on a real kernel.
			rc.waitIdle()
			rc.tgt.Memory().Write(addr, bytes.Repeat([]byte{0x5A}, 100))
			if err := rc.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
				t.Fatal(err)
			}
			rc.waitState()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newRAHarness(t, sim.Config{})
			rc := h.rawOpen("stale", true)
			rc.read(base, chunk)
			rc.read(base+chunk, chunk)
			waitPrefetched(t, h.findTarget("stale"), 6) // chunks 2..7 are cached now
			victim := base + 4*chunk + 10
			before := h.findTarget("stale").readAheadStats()
			rc.waitIdle = func() { waitPrefetchIdle(t, h.findTarget("stale")) }
			tc.change(t, rc, victim)
			after := h.findTarget("stale").readAheadStats()
			if after.Invalidate == before.Invalidate {
				t.Fatalf("%s did not invalidate the cache", tc.name)
			}
			rc.verify = true
			for i := 2; i < 10; i++ {
				rc.read(base+uint64(i)*chunk, chunk) // checks against memory now
			}
		})
	}
}

// TestReadAheadRandomOperations runs a random mix of reads, writes,
// resumes and state changes and checks every reply and every current push
// against the target's memory.
func TestReadAheadRandomOperations(t *testing.T) {
	t.Parallel()
	const size = 256 << 10
	h := newRAHarness(t, sim.Config{DataSize: size})
	rc := h.rawOpen("rand", true)
	rng := rand.New(rand.NewPCG(1, 2))
	pos := sim.DataBase
	for range 300 {
		switch op := rng.IntN(20); {
		case op < 12: // sequential read
			n := uint32(chunk)
			if rng.IntN(4) == 0 {
				n = uint32(1 + rng.IntN(chunk))
			}
			rc.read(pos, n)
			pos += uint64(n)
			if pos >= sim.DataBase+size+4*chunk {
				pos = sim.DataBase + uint64(rng.IntN(size))
			}
		case op < 14: // jump
			pos = sim.DataBase + uint64(rng.IntN(size+chunk))
			rc.read(pos, chunk)
		case op < 17: // write ahead of the reader
			data := make([]byte, 1+rng.IntN(64))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			addr := pos + uint64(rng.IntN(8*chunk))
			rc.call(kd.NewWriteVirtual(addr, data))
		case op < 18: // resume, memory changes, break in
			rc.send(kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue}))
			waitRunning(t, rc.tgt)
			rc.tgt.Memory().Write(pos+uint64(rng.IntN(4*chunk)), []byte{byte(rng.Uint32()), 1, 2, 3})
			if err := rc.conn.Wire().Send(wire.TypeBreakIn, nil); err != nil {
				t.Fatal(err)
			}
			rc.waitState()
		default: // other calls in between
			rc.call(kd.NewGetContext(0))
		}
	}
	if st := h.findTarget("rand").readAheadStats(); st.Pushed == 0 {
		t.Fatalf("nothing was read ahead: %+v", st)
	}
}

// TestReadAheadBridgeDump runs a debugger (kd.Host) through a kdclient
// bridge with read-ahead: the dump is exact, most chunks are answered by
// the bridge, and a write in the middle is seen by the next dump.
func TestReadAheadBridgeDump(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	c := h.spec("bridge")
	ctx := testkit.Context(t, 60*time.Second)
	sess, host := bridgeHost(ctx, t, c)
	tgt := h.sim("bridge")
	addr := sim.DataBase + 0x100000
	const n = 1 << 20
	check := func(what string, off, n uint64) {
		t.Helper()
		got, err := host.ReadVirtual(ctx, addr+off, int(n))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want := make([]byte, n)
		tgt.Memory().Read(addr+off, want)
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: dump differs from the target's memory at offset %#x", what, off+uint64(i))
		}
	}
	check("first dump", 0, n)
	// Answered locally: from pushes it had (Hits), or waited for (Early).
	if st := sess.Bridge.ReadAheadStats(); st.Hits+st.Early < n/chunk/2 {
		t.Fatalf("the bridge answered only %d of %d chunks locally: %+v", st.Hits+st.Early, n/chunk, st)
	}
	// Read half, change memory just ahead of the reader (where the bridge
	// holds pushed chunks now), read on.
	const half = 64 * chunk // chunk-aligned: the second half continues the stream
	check("first half", 0, half)
	if _, err := host.WriteVirtual(ctx, addr+half+chunk+5, []byte("fresh bytes")); err != nil {
		t.Fatal(err)
	}
	check("second half after a write", half, n-half)
	check("first half again", 0, half)
	if err := host.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, tgt)
	tgt.Memory().Write(addr+half+2*chunk, []byte("changed while running"))
	if _, err := host.Break(ctx); err != nil {
		t.Fatal(err)
	}
	check("second half after continue and break", half, n-half)
}

// TestReadAheadBridgeRandomOperations drives a debugger (kd.Host) through a
// kdclient bridge with read-ahead on: a random mix of sequential reads of
// varied sizes (most of them answered by the bridge, from pushes it had or
// waited for), jumps, writes ahead of the reader, and resumes during which
// the memory changes. Every read must equal the target's memory at that
// moment, and the bridge must have answered most of them.
func TestReadAheadBridgeRandomOperations(t *testing.T) {
	t.Parallel()
	const size = 512 << 10
	h := newRAHarness(t, sim.Config{DataSize: size})
	c := h.spec("bridge-rand")
	ctx := testkit.Context(t, 90*time.Second)
	sess, host := bridgeHost(ctx, t, c)
	tgt := h.sim("bridge-rand")
	rng := rand.New(rand.NewPCG(3, 4))
	pos := sim.DataBase
	reads := 0
	read := func(n int) {
		t.Helper()
		got, err := host.ReadVirtual(ctx, pos, n)
		if err != nil {
			t.Fatalf("read %d at %#x: %v", n, pos, err)
		}
		want := make([]byte, n)
		tgt.Memory().Read(pos, want)
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("read %d (%d bytes at %#x) differs from the target's memory at %#x (stats %+v)", reads, n, pos, pos+uint64(i), sess.Bridge.ReadAheadStats())
		}
		reads++
		pos += uint64(n)
		if pos >= sim.DataBase+size-16*chunk {
			pos = sim.DataBase + uint64(rng.IntN(size/2))
		}
	}
	for range 400 {
		switch op := rng.IntN(20); {
		case op < 14: // sequential read: whole chunks, or any size
			n := chunk
			if rng.IntN(3) == 0 {
				n = 1 + rng.IntN(3*chunk)
			}
			read(n)
		case op < 15: // jump
			pos = sim.DataBase + uint64(rng.IntN(size/2))
			read(chunk)
		case op < 18: // write ahead of the reader, where pushes may be kept
			data := make([]byte, 1+rng.IntN(64))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if _, err := host.WriteVirtual(ctx, pos+uint64(rng.IntN(8*chunk)), data); err != nil {
				t.Fatal(err)
			}
		case op < 19: // resume; the memory changes while it runs; break in
			if err := host.Continue(ctx); err != nil {
				t.Fatal(err)
			}
			waitRunning(t, tgt)
			tgt.Memory().Write(pos+uint64(rng.IntN(4*chunk)), []byte{byte(rng.Uint32()), 1, 2, 3})
			if _, err := host.Break(ctx); err != nil {
				t.Fatal(err)
			}
		default: // another call in between
			if _, err := host.Context(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := sess.Bridge.ReadAheadStats()
	if st.Hits+st.Early < uint64(reads)/2 {
		t.Fatalf("the bridge answered %d of %d reads (%+v)", st.Hits+st.Early, reads, st)
	}
}

// bridgeHost opens a session on c with read-ahead on and attaches the
// bridge's in-process debugger; both end with the test.
func bridgeHost(ctx context.Context, t *testing.T, c *spec.Connect) (*kdclient.Session, *kd.Host) {
	t.Helper()
	sess, err := kdclient.OpenSession(ctx, c, kdclient.Options{Logger: logx.Discard()}, kdclient.SessionOptions{ReadAhead: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	host, stopHost := sess.Host(kd.HostOptions{})
	t.Cleanup(stopHost)
	if _, err := host.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	return sess, host
}

func TestReadAheadOptionErrors(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	c := h.spec("opt")
	ctx := testkit.Context(t, 10*time.Second)
	conn, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: logx.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Open(ctx, c.Trans); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body string
		ok   bool
		want string
	}{
		{"readahead=on", true, ""},
		{"READAHEAD=off", true, ""},
		{"readahead=maybe", false, "readahead=on or readahead=off"},
		{"bogus=1", false, "unknown session option"},
	} {
		r, err := conn.Control(ctx, wire.CmdSetOption, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if (r.Status == wire.OK) != tc.ok || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("%s: status %v body %q", tc.body, r.Status, r.Body)
		}
	}
}

// TestReadAheadFrameDecode is a table test of the extension frame decoder.
func TestReadAheadFrameDecode(t *testing.T) {
	req := kd.NewReadVirtual(0x1000, 16)
	rep := req.Reply(kd.StatusSuccess, bytes.Repeat([]byte{1}, 16))
	good := readahead.Encode(7, rep.Append(nil))
	write := kd.NewWriteVirtual(0x1000, []byte{1})
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", good, true},
		{"short", good[:20], false},
		{"not a read", readahead.Encode(1, write.Append(nil)), false},
		{"empty", nil, false},
	} {
		stamp, m, err := readahead.Decode(tc.b)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if tc.ok && (stamp != 7 || binary.LittleEndian.Uint64(m.U[0:]) != 0x1000) {
			t.Errorf("%s: stamp %d, address %#x", tc.name, stamp, m.Memory().Address)
		}
	}
}

// TestReadAheadKdclientFlag runs kdclient's dump command with -readahead
// against the server: the file is exact and the server read ahead.
func TestReadAheadKdclientFlag(t *testing.T) {
	t.Parallel()
	h := newRAHarness(t, sim.Config{})
	c := h.spec("cli")
	file := filepath.Join(t.TempDir(), "dump.bin")
	addr := sim.DataBase + 0x3000
	const n = 256 << 10
	ctx := testkit.Context(t, 60*time.Second)
	var out, errs bytes.Buffer
	code := kdclientcli.Main(ctx, []string{"-k", c.String(), "-readahead", "dump", fmt.Sprintf("%#x", addr), strconv.Itoa(n), file}, &out, &errs)
	if code != 0 {
		t.Fatalf("kdclient exit %d: %s", code, errs.String())
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	h.sim("cli").Memory().Read(addr, want)
	if !bytes.Equal(got, want) {
		t.Fatal("the dump differs from the target's memory")
	}
	if st := h.findTarget("cli"); st == nil {
		t.Log("target already closed")
	} else if s := st.readAheadStats(); s.Pushed == 0 {
		t.Fatalf("kdclient -readahead did not enable read-ahead: %+v", s)
	}
}
