package haltcache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

func manip(m kd.Manipulate) []byte { return m.Append(nil) }

func readReply(req kd.Manipulate, data []byte) []byte {
	rep := req.Reply(kd.StatusSuccess, data)
	a := rep.Memory()
	a.Actual = uint32(len(data))
	rep.SetMemory(a)
	return rep.Append(nil)
}

func haltedCache(t *testing.T) *Cache { return haltedCacheOf(t, 0) }

// haltedCacheOf is a cache of maxBytes (New) that saw the target stop.
func haltedCacheOf(t *testing.T, maxBytes int) *Cache {
	t.Helper()
	c := New(maxBytes)
	sc := kd.StateChange{NewState: kd.StateException}
	c.FromTarget(kd.TypeStateChange64, sc.Append(nil))
	if !c.Halted() {
		t.Fatal("a state change did not mark the target halted")
	}
	return c
}

// fill sends req through c as a miss and feeds it the target's reply.
func fill(t *testing.T, c *Cache, req kd.Manipulate, reply []byte) {
	t.Helper()
	if _, hit := c.Request(kd.TypeStateManipulate, manip(req)); hit {
		t.Fatalf("%v answered from an empty cache", req.API)
	}
	c.FromTarget(kd.TypeStateManipulate, reply)
}

func TestSpansStitch(t *testing.T) {
	c := haltedCache(t)
	pat := sim.PatternBytes
	r1 := kd.NewReadVirtual(0x1000, 0x100)
	fill(t, c, r1, readReply(r1, pat(0x1000, 0x100)))
	r2 := kd.NewReadVirtual(0x1100, 0x100) // adjacent
	fill(t, c, r2, readReply(r2, pat(0x1100, 0x100)))
	r3 := kd.NewReadVirtual(0x1180, 0x100) // overlapping
	fill(t, c, r3, readReply(r3, pat(0x1180, 0x100)))
	for _, tc := range []struct {
		addr uint64
		n    uint32
		hit  bool
	}{
		{0x1000, 0x100, true}, // exact
		{0x1010, 0x10, true},  // contained
		{0x10f0, 0x20, true},  // across the first seam
		{0x1000, 0x280, true}, // all three
		{0x1270, 0x20, false}, // runs past the end
		{0x0ff0, 0x20, false}, // starts before
		{0x2000, 0x10, false}, // elsewhere
		{0x1000, 0, false},    // empty reads go to the target
	} {
		req := kd.NewReadVirtual(tc.addr, tc.n)
		rep, hit := c.Request(kd.TypeStateManipulate, manip(req))
		if hit != tc.hit {
			t.Errorf("read %#x+%#x: hit %v, want %v", tc.addr, tc.n, hit, tc.hit)
			continue
		}
		if hit && !bytes.Equal(rep, readReply(req, pat(tc.addr, int(tc.n)))) {
			t.Errorf("read %#x+%#x: wrong reply", tc.addr, tc.n)
		}
	}
	// Another processor's reads are not served from processor 0's bytes.
	other := kd.NewReadVirtual(0x1000, 0x10)
	other.Processor = 1
	if _, hit := c.Request(kd.TypeStateManipulate, manip(other)); hit {
		t.Error("processor 1 got processor 0's bytes")
	}
}

func TestWhatIsNeverCached(t *testing.T) {
	c := haltedCache(t)
	for _, req := range []kd.Manipulate{
		kd.NewReadPhysical(0x1000, 16),
		kd.NewReadIOSpace(0x60, 1),
		kd.NewReadMSR(0, 0xc0000082),
		kd.NewQueryMemory(0x1000),
	} {
		for range 2 {
			if _, hit := c.Request(kd.TypeStateManipulate, manip(req)); hit {
				t.Errorf("%v was answered from the cache", req.API)
			}
			rep := req.Reply(kd.StatusSuccess, []byte{1, 2, 3, 4})
			c.FromTarget(kd.TypeStateManipulate, rep.Append(nil))
		}
	}
	// A failed read is asked again.
	r := kd.NewReadVirtual(0x5000, 16)
	fail := r.Reply(kd.StatusUnsuccessful, nil)
	fill(t, c, r, fail.Append(nil))
	if _, hit := c.Request(kd.TypeStateManipulate, manip(r)); hit {
		t.Error("a failed read was answered from the cache")
	}
	// Nothing is kept while the target runs.
	c2 := New(0)
	v := kd.NewGetVersion()
	vr := v.Reply(kd.StatusSuccess, nil)
	fill(t, c2, v, vr.Append(nil))
	if _, hit := c2.Request(kd.TypeStateManipulate, manip(v)); hit {
		t.Error("answered before any state change")
	}
}

func TestMemoryBound(t *testing.T) {
	c := haltedCacheOf(t, 1000)
	for i := range 10 {
		r := kd.NewReadVirtual(uint64(i)*0x1000, 400)
		fill(t, c, r, readReply(r, make([]byte, 400)))
		if c.memBytes > 1000 {
			t.Fatalf("after %d reads the cache holds %d bytes, the bound is 1000", i+1, c.memBytes)
		}
	}
}

// model runs random debugger sessions against a simulated target twice
// over: every request goes through the cache, and every answer the cache
// gives is checked against the target's own answer to the same request.
// It returns the first stale answer found.
type model struct {
	t    testing.TB
	tgt  *sim.Machine
	host *kd.Host
	link *kd.Link
	c    *Cache
	rng  *rand.Rand
	ctx  context.Context
	hits int
	// recent reads, repeated as debuggers repeat them
	recent []kd.Manipulate
}

func newModel(t testing.TB, seed uint64, broken string) *model {
	t.Helper()
	tgt := sim.New(sim.Config{StartHalted: true, Processors: 2, DataSize: 1 << 20})
	a, b := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tgt.Serve(ctx, b)
	}()
	link := kd.NewHostLink(a, kd.Config{})
	host := kd.NewHost(link, kd.HostOptions{AttachInterval: 50 * time.Millisecond})
	t.Cleanup(func() {
		cancel()
		link.Close()
		a.Close()
		<-done
	})
	m := &model{t: t, tgt: tgt, host: host, link: link, c: New(1 << 20), rng: rand.New(rand.NewPCG(seed, 1)), ctx: ctx}
	if broken != "" {
		m.c.broken = map[string]bool{broken: true}
	}
	if err := m.stopped(host.Attach(ctx)); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return m
}

// call sends req as the debugger would: through the cache. A cached answer
// is compared with the target's.
func (m *model) call(req kd.Manipulate) error {
	payload := manip(req)
	cached, hit := m.c.Request(kd.TypeStateManipulate, payload)
	if kd.Resumes(kd.TypeStateManipulate, payload) {
		if err := m.host.Resume(m.ctx, req.Continue2()); err != nil {
			return err
		}
		return m.stopped(m.host.Break(m.ctx)) // stop it again at once
	}
	rep, err := m.host.Call(m.ctx, req)
	if err != nil {
		return fmt.Errorf("%v: %w", req.API, err)
	}
	direct := rep.Append(nil)
	if hit {
		m.hits++
		if !bytes.Equal(cached, direct) {
			return fmt.Errorf("stale answer to %v (cpu %d, %+v): the cache said %x…, the target %x…", req.API, req.Processor, req.Memory(), head(cached), head(direct))
		}
		return nil
	}
	m.c.FromTarget(kd.TypeStateManipulate, direct)
	return nil
}

func head(b []byte) []byte {
	if len(b) > 80 {
		return b[56:80]
	}
	return b
}

// step does one random thing a debugger (or the world) may do.
func (m *model) step() error {
	r := m.rng
	cpu := uint16(r.IntN(2))
	// A small window of addresses, so that reads and writes overlap.
	addr := sim.DataBase + uint64(r.IntN(64))*16
	base := m.tgt.Layout().KernBase
	switch n := r.IntN(100); {
	case n < 40:
		// Debuggers read the same things again and again.
		if len(m.recent) > 0 && r.IntN(3) > 0 {
			return m.call(m.recent[r.IntN(len(m.recent))])
		}
		var req kd.Manipulate
		switch r.IntN(6) {
		case 0:
			req = kd.NewGetContext(cpu)
		case 1:
			req = kd.NewGetContextEx(cpu, uint32(r.IntN(0x100)), uint32(1+r.IntN(0x100)))
		case 2:
			req = kd.NewReadControlSpace(cpu, uint64(r.IntN(4)), 8)
		case 3:
			req = kd.NewReadVirtual(base+uint64(r.IntN(32))*8, uint32(1+r.IntN(256)))
		default:
			req = kd.NewReadVirtual(addr, uint32(1+r.IntN(256)))
			req.Processor = cpu
		}
		if len(m.recent) < 16 {
			m.recent = append(m.recent, req)
		} else {
			m.recent[r.IntN(len(m.recent))] = req
		}
		return m.call(req)
	case n < 50:
		return m.call(kd.NewGetVersion())
	case n < 56:
		data := make([]byte, 1+r.IntN(64))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		return m.call(kd.NewWriteVirtual(addr, data))
	case n < 60:
		rep, err := m.host.Call(m.ctx, kd.NewGetContext(cpu))
		if err != nil {
			return err
		}
		ctx := append([]byte(nil), rep.Extra...)
		ctx[0xF8] ^= byte(1 + r.IntN(255)) // Rip
		return m.call(kd.NewSetContext(cpu, 0x10001F, ctx))
	case n < 63:
		data := make([]byte, 8)
		data[0] = byte(r.Uint32())
		return m.call(kd.NewWriteControlSpace(cpu, 2, data))
	case n < 67:
		return m.call(kd.NewWriteBreakPoint(addr))
	case n < 69:
		return m.call(kd.NewRestoreBreakPoint(uint32(1 + r.IntN(4))))
	case n < 74:
		return m.call(kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue, CurrentSymbolStart: 1}))
	case n < 77:
		// The debugger resynchronises: the bridge answers RESET by
		// resetting the cache.
		m.c.Reset()
		return nil
	case n < 80:
		// The machine reboots; the server reports it and the bridge
		// resets the cache, then the debugger attaches again.
		m.tgt.Reboot()
		m.c.Reset()
		return m.stopped(m.host.Attach(m.ctx))
	case n < 83:
		// Another client takes the session over and changes memory; ours
		// ends, and the bridge's next session starts with a reset cache.
		data := []byte{byte(r.Uint32()), 0x5a}
		if _, err := m.host.WriteVirtual(m.ctx, addr, data); err != nil {
			return err
		}
		m.c.Reset()
		return nil
	case n < 88:
		// The target runs and stops again without this cache seeing why
		// (a resume it did not carry), and the kernel changed memory
		// meanwhile: only the state change tells the cache.
		if err := m.host.Continue(m.ctx); err != nil {
			return err
		}
		m.tgt.Memory().Write(addr, []byte{byte(r.Uint32()), byte(r.Uint32())})
		return m.stopped(m.host.Break(m.ctx))
	case n < 92:
		return m.call(kd.NewQueryMemory(addr))
	default:
		// The same stop reported again (after a RESEND): still halted.
		sc, _ := m.host.State()
		return m.stopped(sc, nil)
	}
}

// stopped passes the state change sc, which the debugger got with err,
// on to the cache, as the bridge does with every stop.
func (m *model) stopped(sc kd.StateChange, err error) error {
	if err != nil {
		return err
	}
	m.c.FromTarget(kd.TypeStateChange64, sc.Append(nil))
	return nil
}

func runModel(t testing.TB, seqs, steps int, broken string) (hits int, err error) {
	for s := range seqs {
		m := newModel(t, uint64(s), broken)
		for range steps {
			if err := m.step(); err != nil {
				return hits + m.hits, fmt.Errorf("sequence %d: %w", s, err)
			}
		}
		hits += m.hits
	}
	return hits, nil
}

// TestModel: thousands of random operations; every answer the cache gives
// equals the target's answer to the same request at that moment.
func TestModel(t *testing.T) {
	seqs, steps := 40, 60
	if testing.Short() {
		seqs = 10
	}
	hits, err := runModel(t, seqs, steps, "")
	if err != nil {
		t.Fatal(err)
	}
	if hits < seqs*steps/20 {
		t.Fatalf("only %d of %d requests were answered from the cache: the test no longer exercises it", hits, seqs*steps)
	}
	t.Logf("%d operations, %d answered from the cache", seqs*steps, hits)
}

// TestModelCatchesBrokenRules breaks each invalidation rule on purpose and
// checks that the model test then finds a stale answer.
func TestModelCatchesBrokenRules(t *testing.T) {
	// ("resume", which stops keeping answers once the target runs, is
	// defence in depth behind "changes": TestWhatIsNeverCached covers it.)
	for _, rule := range []string{"changes", "statechange", "reset"} {
		t.Run(rule, func(t *testing.T) {
			_, err := runModel(t, 40, 60, rule)
			if err == nil {
				t.Fatalf("with the %q rule broken the model found no stale answer", rule)
			}
			t.Logf("caught: %v", err)
		})
	}
}
