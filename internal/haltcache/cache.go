// Package haltcache answers a debugger's repeated reads of a halted target
// on the debugger's side of a slow link.
//
// A debugger that attaches to a stopped kernel reads the same things again
// and again: radare2's attach makes about 45 KD calls of which 9 are
// distinct (the register context eleven times, the same bytes at the
// instruction pointer ten times, the debugger data block chain four times).
// While the target is halted, nothing but the debugger changes its memory
// and registers, so the answer to a read the debugger already made is still
// the answer. kdclient's bridge and built-in commands keep those answers in
// a Cache and give them back without crossing the network.
//
// The rules (docs/benchmarks.md, "The halted-target cache"):
//
//   - Only answers the debugger itself asked for are kept; nothing is
//     fetched on speculation, so the cache adds no reads with side effects.
//   - Only side-effect-free reads are kept (kd.DebuggerEffect says
//     EffectPureRead): ReadVirtualMemory (bytes, stitched across requests),
//     GetVersion, GetContext, GetContextEx and ReadControlSpace. Never I/O
//     space, bus data, MSRs or physical memory.
//   - Only while the target is halted: from a state change until the
//     debugger lets it run.
//   - Everything is dropped on any packet that may change the target
//     (kd.DebuggerEffect says EffectChanges: writes of memory, registers,
//     control space or MSRs, breakpoints, continue, reboot, and anything
//     unknown), on every state change and every other packet the target
//     sends on its own, and on Reset, which the owner calls when the
//     debugger resynchronises (RESET), when the target restarts or its
//     link is re-established, and when the session changes hands.
//     GetVersion alone survives stops: it changes only with a boot, and a
//     boot comes with a Reset.
//
// kdsrv's read-ahead follows the same rule (readahead.Invalidates is
// kd.DebuggerEffect), so the two never disagree about what is current.
package haltcache

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"kdsrv/internal/kd"
)

// DefaultMaxBytes bounds the virtual-memory bytes a Cache keeps; past it the
// kept memory is dropped and collecting starts again.
const DefaultMaxBytes = 16 << 20

// Stats counts what a Cache did.
type Stats struct {
	Hits          uint64 // requests answered locally
	Misses        uint64 // cacheable requests that went to the target
	Stored        uint64 // answers kept
	Invalidations uint64 // times everything (but the version) was dropped
	Resets        uint64 // calls of Reset
}

// Cache is the halted-target cache of one debug session. It is safe for
// concurrent use; the zero value is not usable — use New.
type Cache struct {
	mu       sync.Mutex
	maxBytes int
	halted   bool
	// pending is the cacheable request that went to the target and whose
	// reply is awaited; only that reply is kept.
	pending *kd.Manipulate
	version *kd.Manipulate // the GetVersion reply of this boot
	// Keyed answers: contexts, context slices and control space.
	answers map[answerKey]kd.Manipulate
	// Virtual memory, per processor: sorted, non-overlapping, non-adjacent
	// spans of bytes read successfully.
	mem      map[cpuKey][]span
	memBytes int
	stats    Stats
	// broken switches rules off, so that the model test can show that it
	// catches each of them missing. Never set outside tests.
	broken map[string]bool
}

// New returns an empty cache that keeps at most maxBytes bytes of virtual
// memory (DefaultMaxBytes when maxBytes ≤ 0).
func New(maxBytes int) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Cache{maxBytes: maxBytes, answers: make(map[answerKey]kd.Manipulate), mem: make(map[cpuKey][]span)}
}

type cpuKey struct{ level, cpu uint16 }

type answerKey struct {
	api   kd.APINumber
	cpu   cpuKey
	addr  uint64 // control-space index, context offset
	count uint32
}

type span struct {
	addr uint64
	data []byte
}

func (s span) end() uint64 { return s.addr + uint64(len(s.data)) }

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Halted reports whether the cache believes the target is halted (it saw a
// state change and nothing since let the target run).
func (c *Cache) Halted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.halted
}

// Reset drops everything, the version included, and forgets that the
// target is halted. Call it when the debugger resynchronises (RESET), when
// the target restarts or its link is re-established, and when the session
// changes hands.
func (c *Cache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Resets++
	if c.broken["reset"] {
		return
	}
	c.dropLocked()
	c.version = nil
	c.halted = false
}

func (c *Cache) dropLocked() {
	if len(c.answers) > 0 || len(c.mem) > 0 {
		c.stats.Invalidations++
	}
	clear(c.answers)
	clear(c.mem)
	c.memBytes = 0
	c.pending = nil
}

// Request looks at a packet the debugger sends. When the cache can answer
// it, Request returns the reply payload (a STATE_MANIPULATE packet for the
// debugger) and true, and the packet must not be forwarded. Otherwise the
// packet goes to the target as usual, and Request has dropped whatever it
// may make stale.
func (c *Cache) Request(t kd.PacketType, payload []byte) (reply []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch kd.DebuggerEffect(t, payload) {
	case kd.EffectHarmlessRead:
		c.pending = nil
		return nil, false
	case kd.EffectChanges:
		if !c.broken["changes"] {
			c.dropLocked()
		}
		if kd.Resumes(t, payload) && !c.broken["resume"] {
			c.halted = false
		}
		if t == kd.TypeStateManipulate && len(payload) >= 4 && kd.APINumber(binary.LittleEndian.Uint32(payload)) == kd.APIReboot {
			c.version = nil
		}
		return nil, false
	}
	req, err := kd.DecodeManipulate(payload)
	if err != nil {
		c.dropLocked()
		return nil, false
	}
	if !c.halted {
		c.pending = nil
		return nil, false
	}
	if rep, ok := c.lookupLocked(req); ok {
		c.stats.Hits++
		c.pending = nil
		return rep.Append(nil), true
	}
	c.stats.Misses++
	req.Extra = nil
	c.pending = &req
	return nil, false
}

// FromTarget looks at a packet the target sent (through the server): a
// state change marks the target halted and starts a new stop, the reply to
// a pending cacheable request is kept, and anything else the target says
// on its own drops what is kept.
func (c *Cache) FromTarget(t kd.PacketType, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch t {
	case kd.TypeStateChange64:
		if !c.broken["statechange"] {
			c.dropLocked()
		}
		c.halted = true
		return
	case kd.TypeStateManipulate:
		p := c.pending
		c.pending = nil
		if p == nil || !c.halted {
			return
		}
		rep, err := kd.DecodeManipulate(payload)
		if err != nil || !kd.Matches(*p, rep) || !sameRequest(*p, rep) {
			return
		}
		c.storeLocked(*p, rep)
		return
	}
	// DbgPrint, DbgPrompt, file and trace I/O, or anything else: the
	// target did something on its own.
	c.dropLocked()
}

// sameRequest checks the reply echoes the request's own fields (a reply to
// an earlier, retransmitted request for other bytes is not taken for it).
func sameRequest(req, rep kd.Manipulate) bool {
	if req.Processor != rep.Processor || req.ProcessorLevel != rep.ProcessorLevel {
		return false
	}
	switch req.API {
	case kd.APIReadVirtualMemory, kd.APIReadControlSpace:
		return req.Memory().Address == rep.Memory().Address && req.Memory().Count == rep.Memory().Count
	case kd.APIGetContextEx:
		return req.ContextEx().Offset == rep.ContextEx().Offset && req.ContextEx().ByteCount == rep.ContextEx().ByteCount
	}
	return true
}

func keyOf(m kd.Manipulate) answerKey {
	k := answerKey{api: m.API, cpu: cpuKey{m.ProcessorLevel, m.Processor}}
	switch m.API {
	case kd.APIReadControlSpace:
		a := m.Memory()
		k.addr, k.count = a.Address, a.Count
	case kd.APIGetContextEx:
		a := m.ContextEx()
		k.addr, k.count = uint64(a.Offset), a.ByteCount
	}
	return k
}

func (c *Cache) storeLocked(req, rep kd.Manipulate) {
	rep.Extra = append([]byte(nil), rep.Extra...)
	switch req.API {
	case kd.APIGetVersion:
		if rep.ReturnStatus != kd.StatusSuccess {
			return
		}
		c.version = &rep
	case kd.APIReadVirtualMemory:
		a := rep.Memory()
		if rep.ReturnStatus != kd.StatusSuccess || a.Actual == 0 || int(a.Actual) != len(rep.Extra) || a.Actual > req.Memory().Count {
			return // failures and odd replies are asked again every time
		}
		c.addSpanLocked(cpuKey{req.ProcessorLevel, req.Processor}, a.Address, rep.Extra)
	case kd.APIGetContext, kd.APIGetContextEx, kd.APIReadControlSpace:
		if rep.ReturnStatus != kd.StatusSuccess {
			return
		}
		c.answers[keyOf(req)] = rep
	default:
		return
	}
	c.stats.Stored++
}

// lookupLocked builds the reply to req from what is kept, exactly as the
// target would: the request echoed, with status, output fields and data.
func (c *Cache) lookupLocked(req kd.Manipulate) (kd.Manipulate, bool) {
	switch req.API {
	case kd.APIGetVersion:
		if c.version == nil {
			return kd.Manipulate{}, false
		}
		rep := req.Reply(c.version.ReturnStatus, nil)
		rep.U = c.version.U
		return rep, true
	case kd.APIReadVirtualMemory:
		a := req.Memory()
		data, ok := c.readSpanLocked(cpuKey{req.ProcessorLevel, req.Processor}, a.Address, a.Count)
		if !ok {
			return kd.Manipulate{}, false
		}
		rep := req.Reply(kd.StatusSuccess, data)
		a.Actual = a.Count
		rep.SetMemory(a)
		return rep, true
	case kd.APIGetContext, kd.APIGetContextEx, kd.APIReadControlSpace:
		kept, ok := c.answers[keyOf(req)]
		if !ok {
			return kd.Manipulate{}, false
		}
		rep := req.Reply(kept.ReturnStatus, append([]byte(nil), kept.Extra...))
		rep.U = kept.U
		return rep, true
	}
	return kd.Manipulate{}, false
}

// addSpanLocked keeps data read at addr, merging it with the spans it
// overlaps or touches (the new bytes win: they are the newer answer).
func (c *Cache) addSpanLocked(k cpuKey, addr uint64, data []byte) {
	end := addr + uint64(len(data))
	if end < addr {
		return // wraps around the address space
	}
	if c.memBytes+len(data) > c.maxBytes {
		clear(c.mem)
		c.memBytes = 0
	}
	spans := c.mem[k]
	// First span that ends at or after addr, and first that starts after end.
	i := sort.Search(len(spans), func(i int) bool { return spans[i].end() >= addr })
	j := sort.Search(len(spans), func(j int) bool { return spans[j].addr > end })
	lo, hi := addr, end
	if i < j {
		lo = min(lo, spans[i].addr)
		hi = max(hi, spans[j-1].end())
	}
	merged := make([]byte, hi-lo)
	removed := 0
	for _, s := range spans[i:j] {
		copy(merged[s.addr-lo:], s.data)
		removed += len(s.data)
	}
	copy(merged[addr-lo:], data)
	out := make([]span, 0, len(spans)-(j-i)+1)
	out = append(out, spans[:i]...)
	out = append(out, span{addr: lo, data: merged})
	out = append(out, spans[j:]...)
	c.mem[k] = out
	c.memBytes += len(merged) - removed
}

// readSpanLocked returns a copy of n bytes at addr if one kept span holds
// them all (spans that touch are merged, so one is enough).
func (c *Cache) readSpanLocked(k cpuKey, addr uint64, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, false
	}
	end := addr + uint64(n)
	if end < addr {
		return nil, false
	}
	spans := c.mem[k]
	i := sort.Search(len(spans), func(i int) bool { return spans[i].end() > addr })
	if i == len(spans) || spans[i].addr > addr || spans[i].end() < end {
		return nil, false
	}
	s := spans[i]
	return append([]byte(nil), s.data[addr-s.addr:end-s.addr]...), true
}

// String describes the cache's contents for traces.
func (c *Cache) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("halted=%v answers=%d memory=%d bytes hits=%d misses=%d", c.halted, len(c.answers), c.memBytes, c.stats.Hits, c.stats.Misses)
}
