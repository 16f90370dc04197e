package client

import (
	"context"
	"fmt"
	"sync"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/readahead"
	"kdsrv/internal/wire"
)

// bridgeCacheEntries bounds the data a bridge keeps from pushes: twice the
// server's window of chunks.
const bridgeCacheEntries = 2 * readahead.MaxWindow

// bridgeReadAhead is the client half of read-ahead (see package readahead):
// it keeps the replies the server pushes and answers the debugger's reads
// from them.
type bridgeReadAhead struct {
	mu    sync.Mutex
	sent  uint32 // invalidating packets sent to the server since enabling
	cache *readahead.Cache
	stats ReadAheadStats
}

// ReadAheadStats counts what the bridge did with pushed data.
type ReadAheadStats struct {
	Pushes uint64 // replies the server pushed
	Stale  uint64 // pushes dropped because the debugger changed the target meanwhile
	Hits   uint64 // debugger reads answered locally
}

// EnableReadAhead asks the server to read ahead when the debugger reads
// virtual memory sequentially, and makes the bridge answer reads from what
// the server pushes. Call it after Open and before Run.
//
// Read-ahead reads target memory the debugger did not ask for (yet): if
// the debugger reads virtual addresses that map device memory with read
// side effects, prefetching may trigger them. Physical memory, I/O and
// control space are never prefetched.
func (b *Bridge) EnableReadAhead(ctx context.Context) error {
	r, err := b.c.Control(ctx, wire.CmdSetOption, []byte("readahead=on"))
	if err != nil {
		return fmt.Errorf("enabling read-ahead: %w", err)
	}
	if r.Status != wire.OK {
		return fmt.Errorf("the server refused read-ahead (%s): %s", r.Status, r.Body)
	}
	b.mu.Lock()
	b.ra = &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
	b.mu.Unlock()
	// Control skipped the KD packets that came before its reply (a halted
	// target's state change): ask for the current state again.
	b.c.opts.Trace.Note(kdtrace.HopServer, kdtrace.ToTarget, "reset", "the bridge asks for the target's state again")
	return b.c.wc.Send(wire.TypeReset, nil)
}

// ReadAheadStats returns the bridge's read-ahead counters (zero when
// read-ahead is off).
func (b *Bridge) ReadAheadStats() ReadAheadStats {
	ra := b.readAhead()
	if ra == nil {
		return ReadAheadStats{}
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.stats
}

func (b *Bridge) readAhead() *bridgeReadAhead {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ra
}

// fromServer looks at a KD frame from the server; true means it was a push
// and is consumed.
func (ra *bridgeReadAhead) fromServer(pt uint16, payload []byte) (bool, error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if pt != readahead.PacketType {
		if kd.PacketType(pt) != kd.TypeStateManipulate {
			ra.cache.Clear() // state change, DbgPrint...: the target moved
		}
		return false, nil
	}
	stamp, rep, err := readahead.Decode(payload)
	if err != nil {
		return true, fmt.Errorf("kdsrv sent a bad read-ahead frame: %w", err)
	}
	ra.stats.Pushes++
	if stamp != ra.sent {
		ra.stats.Stale++
		return true, nil
	}
	ra.cache.Put(readahead.KeyOf(rep), readahead.EntryOf(rep))
	return true, nil
}

// clear drops everything kept (the server reported a target state).
func (ra *bridgeReadAhead) clear() {
	ra.mu.Lock()
	ra.cache.Clear()
	ra.mu.Unlock()
}

// fromDebugger looks at a packet from the debugger before it goes to the
// server. A read answered from pushed data returns the reply to give the
// debugger and the hint to send the server instead; otherwise both are nil
// and the packet goes on (after invalidating, if it may change the target).
func (ra *bridgeReadAhead) fromDebugger(p kd.Packet) (reply, hint []byte) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if req, ok := readahead.ReadRequest(p.Type, p.Payload); ok {
		k := readahead.KeyOf(req)
		e, hit := ra.cache.Lookup(k)
		if !hit {
			return nil, nil
		}
		ra.stats.Hits++
		ra.cache.DropBelow(k.Address)
		rep := e.Reply(req)
		return rep.Append(nil), readahead.Encode(ra.sent, req.Append(nil))
	}
	if readahead.Invalidates(p.Type, p.Payload) {
		ra.sent++
		ra.cache.Clear()
	}
	return nil, nil
}
