// Package readahead holds what kdsrv and kdclient share for read-ahead of
// sequential virtual-memory reads: the two KD frame extensions that carry
// prefetched data and consumption hints, the rule that says which debugger
// packets invalidate prefetched data, and a small bounded cache of
// ReadVirtualMemory replies.
//
// # How read-ahead works
//
// A halted target's memory changes only through the debugger. While a
// client that asked for it (control option "readahead=on") reads virtual
// memory sequentially, kdsrv issues the next ReadVirtualMemory requests
// itself, one at a time, and pushes each reply to the client in a Push
// frame. The client's bridge keeps them and answers its debugger's next
// reads locally, telling the server with a Hint frame, so a dump costs one
// network round trip per window of chunks instead of one per chunk.
//
// Prefetched data is only used while it is current. Both sides count the
// debugger packets that may change the target (Invalidates): the server
// stamps each push with its count when it issued the prefetch, and the
// client keeps a push only when the stamp equals the number of
// invalidating packets it has sent. Anything the target sends other than a
// STATE_MANIPULATE reply (a state change, a DbgPrint, a reboot) clears
// both caches as well.
//
// Only virtual memory is prefetched: never physical memory, I/O space,
// control space or MSRs. Reading virtual memory that maps a device can
// still have side effects on that device; that is why read-ahead is
// opt-in.
package readahead

import (
	"encoding/binary"
	"errors"
	"fmt"

	"kdsrv/internal/kd"
)

// PacketType is the KD-frame packet type of the read-ahead extension frames
// (a Push from server to client, a Hint from client to server). Bit 15
// marks a kdsrv extension (KD packet types are below 0x10); the low bits
// name the KD packet type carried (2, STATE_MANIPULATE). Only a client that
// enabled read-ahead sends or receives it.
const PacketType uint16 = 0x8000 | uint16(kd.TypeStateManipulate)

// StampSize is the size of the generation stamp that starts every
// extension frame's payload.
const StampSize = 4

// DefaultWindow is how many chunks kdsrv reads ahead of the client's
// position in a sequential stream when a session starts. The window
// adapts to the link: each time the debugger catches up with the
// prefetched data (a sequential read reaches kdsrv instead of being
// answered by the bridge, because the pushes were not far enough ahead
// for the link's bandwidth-delay product), kdsrv doubles it, up to
// MaxWindow.
const DefaultWindow = 32

// MaxWindow bounds the adaptive window (1 MiB of maximal chunks), and with
// it what a session's read-ahead keeps on either side.
const MaxWindow = 256

// Encode returns an extension frame payload: the little-endian stamp, then
// a STATE_MANIPULATE payload (a ReadVirtualMemory reply in a Push, the
// request that was answered locally in a Hint).
func Encode(stamp uint32, manipulate []byte) []byte {
	b := make([]byte, 0, StampSize+len(manipulate))
	b = binary.LittleEndian.AppendUint32(b, stamp)
	return append(b, manipulate...)
}

// ErrBadFrame is wrapped by Decode for payloads that are not a read-ahead
// frame.
var ErrBadFrame = errors.New("readahead: malformed extension frame")

// Decode parses an extension frame payload: the stamp and the
// ReadVirtualMemory manipulate it carries. The manipulate's Extra aliases
// p.
func Decode(p []byte) (stamp uint32, m kd.Manipulate, err error) {
	if len(p) < StampSize+kd.ManipulateSize {
		return 0, m, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadFrame, len(p), StampSize+kd.ManipulateSize)
	}
	stamp = binary.LittleEndian.Uint32(p)
	m, err = kd.DecodeManipulate(p[StampSize:])
	if err != nil {
		return 0, m, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if m.API != kd.APIReadVirtualMemory {
		return 0, m, fmt.Errorf("%w: carries %v, only ReadVirtualMemory is prefetched", ErrBadFrame, m.API)
	}
	if len(m.Extra) > kd.MaxManipulateData {
		return 0, m, fmt.Errorf("%w: %d data bytes exceed %d", ErrBadFrame, len(m.Extra), kd.MaxManipulateData)
	}
	return stamp, m, nil
}

// ReadRequest reports whether a KD packet from the debugger is a
// ReadVirtualMemory request, and decodes it.
func ReadRequest(pt kd.PacketType, payload []byte) (kd.Manipulate, bool) {
	if pt != kd.TypeStateManipulate || len(payload) < kd.ManipulateSize {
		return kd.Manipulate{}, false
	}
	m, err := kd.DecodeManipulate(payload)
	if err != nil || m.API != kd.APIReadVirtualMemory {
		return kd.Manipulate{}, false
	}
	return m, true
}

// Invalidates reports whether a KD packet from the debugger may change what
// the target's memory reads as, so that prefetched data must be dropped.
// It is kd.DebuggerEffect's rule, which kdclient's halted-target cache
// follows too: every packet but a side-effect-free read invalidates. Both
// sides of read-ahead count the invalidating packets with this function,
// so their stamps agree.
func Invalidates(pt kd.PacketType, payload []byte) bool {
	return kd.DebuggerEffect(pt, payload) == kd.EffectChanges
}

// Key identifies a ReadVirtualMemory request: the same processor (user
// addresses depend on the process current on it), address and count.
type Key struct {
	Processor      uint16
	ProcessorLevel uint16
	Address        uint64
	Count          uint32
}

// KeyOf returns the key of a ReadVirtualMemory request or reply.
func KeyOf(m kd.Manipulate) Key {
	a := m.Memory()
	return Key{Processor: m.Processor, ProcessorLevel: m.ProcessorLevel, Address: a.Address, Count: a.Count}
}

// Entry is what the target answered to one ReadVirtualMemory request.
type Entry struct {
	Status uint32 // ReturnStatus
	Actual uint32 // ActualBytesRead
	Data   []byte // the bytes returned (owned by the entry)
}

// EntryOf copies what a ReadVirtualMemory reply carries.
func EntryOf(rep kd.Manipulate) Entry {
	return Entry{Status: rep.ReturnStatus, Actual: rep.Memory().Actual, Data: append([]byte(nil), rep.Extra...)}
}

// Complete reports whether the read returned everything it asked for
// successfully, so that a sequential stream may go on after it.
func (e Entry) Complete(count uint32) bool {
	return e.Status == kd.StatusSuccess && e.Actual == count && len(e.Data) == int(count)
}

// Reply builds the answer to req from e, as the target builds it: the
// request echoed with ReturnStatus, ActualBytesRead and the data filled in.
func (e Entry) Reply(req kd.Manipulate) kd.Manipulate {
	rep := req.Reply(e.Status, e.Data)
	a := req.Memory()
	a.Actual = e.Actual
	rep.SetMemory(a)
	return rep
}

// Cache is a bounded set of entries. It is not safe for concurrent use.
// When full, Put evicts the entry with the lowest address.
type Cache struct {
	max int
	m   map[Key]Entry
}

// NewCache returns a cache holding at most limit entries (at least 1).
func NewCache(limit int) *Cache {
	return &Cache{max: max(limit, 1), m: make(map[Key]Entry)}
}

// Get returns the entry for k.
func (c *Cache) Get(k Key) (Entry, bool) {
	e, ok := c.m[k]
	return e, ok
}

// Lookup returns the entry that answers a read of k: the entry stored
// under k, or one assembled from complete entries of the same processor
// that together cover the range. A read that returned everything it asked
// for proves that every part of that range reads the same bytes in full,
// so the assembled answer is what the target would give. Like the target,
// Lookup clamps the count to MaxManipulateData.
func (c *Cache) Lookup(k Key) (Entry, bool) {
	if e, ok := c.m[k]; ok {
		return e, true
	}
	n := min(k.Count, kd.MaxManipulateData)
	end := k.Address + uint64(n)
	if n == 0 || end < k.Address {
		return Entry{}, false
	}
	data := make([]byte, 0, n)
	for a := k.Address; a < end; {
		found := false
		for ek, e := range c.m {
			eEnd := ek.Address + uint64(ek.Count)
			if ek.Processor != k.Processor || ek.ProcessorLevel != k.ProcessorLevel ||
				a < ek.Address || a >= eEnd || !e.Complete(ek.Count) {
				continue
			}
			take := min(end, eEnd) - a
			off := a - ek.Address
			data = append(data, e.Data[off:off+take]...)
			a += take
			found = true
			break
		}
		if !found {
			return Entry{}, false
		}
	}
	return Entry{Status: kd.StatusSuccess, Actual: n, Data: data}, true
}

// Put stores e under k.
func (c *Cache) Put(k Key, e Entry) {
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		var low Key
		first := true
		for o := range c.m {
			if first || o.Address < low.Address {
				low, first = o, false
			}
		}
		delete(c.m, low)
	}
	c.m[k] = e
}

// DropBelow removes every entry that ends at or before addr.
func (c *Cache) DropBelow(addr uint64) {
	for k := range c.m {
		if k.Address+uint64(k.Count) <= addr {
			delete(c.m, k)
		}
	}
}

// Clear removes every entry.
func (c *Cache) Clear() { clear(c.m) }

// Len returns the number of entries.
func (c *Cache) Len() int { return len(c.m) }
