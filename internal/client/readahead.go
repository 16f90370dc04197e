package client

import (
	"context"
	"fmt"
	"sync"
	"time"

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
	// waiting is the debugger's read that found nothing here and went to
	// the server (there is at most one: a debugger waits for each reply).
	// When the debugger has caught up with the pushes, the push it needs
	// is usually on its way already, while the server's reply to the
	// request queues behind every push sent before it (up to a window of
	// chunks): a push that answers it answers the debugger at once.
	waiting   kd.Manipulate
	isWaiting bool
	// late are reads answered that way whose replies from the server are
	// still to come; they are dropped when they do (in order: the server
	// answers requests in the order they were sent).
	late []readahead.Key
	// held: the waiting read was not sent to the server at all. It starts
	// at the edge of the pushed data while pushes are arriving, so the
	// push it needs is on its way; sending it would only make the server
	// send the same data a second time. holdTimer sends it if that push
	// does not come within holdFor.
	held      bool
	holdTimer *time.Timer
	holdGen   uint64 // tells a hold timer that fires late it is not current
	// The push stream: where the newest push ended, its size, and when it
	// came.
	pushEnd   uint64
	pushCount uint32
	pushAt    time.Time
}

// holdFor bounds how long the bridge keeps a read at the edge of the
// pushed data for the push that answers it before it asks the server. The
// server stops pushing when its window is used up until hints come back,
// so on a link whose bandwidth-delay product the window does not cover,
// the read goes to the server, which widens its window on such a
// catch-up.
const holdFor = 100 * time.Millisecond

// ReadAheadStats counts what the bridge did with pushed data.
type ReadAheadStats struct {
	Pushes uint64 // replies the server pushed
	Stale  uint64 // pushes dropped because the debugger changed the target meanwhile
	Hits   uint64 // debugger reads answered locally
	// Early counts reads that had gone to the server and were answered
	// by a push that arrived before the server's reply.
	Early uint64
	// Held counts reads kept back for a push on its way (answered by it,
	// or sent to the server after holdFor).
	Held uint64
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

// fromServer looks at a KD frame from the server. consumed means the bridge
// took it (a push, or the late reply to a read a push answered); answer,
// when set, is the reply to give the debugger now for its waiting read.
func (ra *bridgeReadAhead) fromServer(pt uint16, payload []byte) (consumed bool, answer, hint []byte, err error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if pt != readahead.PacketType {
		if kd.PacketType(pt) != kd.TypeStateManipulate {
			// State change, DbgPrint...: the target moved. Replies to
			// requests sent before it came before it.
			ra.cache.Clear()
			ra.flushHeldLocked()
			ra.late = ra.late[:0]
			return false, nil, nil, nil
		}
		if len(ra.late) > 0 {
			if rep, ok := readahead.ReadRequest(kd.TypeStateManipulate, payload); ok && readahead.KeyOf(rep) == ra.late[0] {
				ra.late = ra.late[1:]
				return true, nil, nil, nil // the debugger had it from a push
			}
		}
		if !ra.held {
			ra.isWaiting = false // the reply to the waiting read, or to something else
		}
		return false, nil, nil, nil
	}
	stamp, rep, err := readahead.Decode(payload)
	if err != nil {
		return true, nil, nil, fmt.Errorf("kdsrv sent a bad read-ahead frame: %w", err)
	}
	ra.stats.Pushes++
	if stamp != ra.sent {
		ra.stats.Stale++
		return true, nil, nil, nil
	}
	pk := readahead.KeyOf(rep)
	ra.cache.Put(pk, readahead.EntryOf(rep))
	ra.pushEnd, ra.pushCount, ra.pushAt = pk.Address+uint64(pk.Count), pk.Count, time.Now()
	if ra.isWaiting {
		k := readahead.KeyOf(ra.waiting)
		if e, hit := ra.cache.Lookup(k); hit {
			held := ra.held
			ra.stopWaitingLocked()
			ra.stats.Early++
			ra.cache.DropBelow(k.Address)
			r := e.Reply(ra.waiting)
			if held {
				// Never sent: the server learns of it as of any read
				// answered here.
				return true, r.Append(nil), readahead.Encode(ra.sent, ra.waiting.Append(nil)), nil
			}
			ra.late = append(ra.late, k)
			return true, r.Append(nil), nil, nil
		}
	}
	return true, nil, nil, nil
}

// stopWaitingLocked forgets the waiting read and stops its hold timer.
func (ra *bridgeReadAhead) stopWaitingLocked() {
	ra.isWaiting, ra.held = false, false
	if ra.holdTimer != nil {
		ra.holdTimer.Stop()
		ra.holdTimer = nil
	}
}

// flushHeldLocked gives up waiting for pushes (the target moved, or the
// server reported a state): a held read goes to the server at once, the
// only place its answer can come from now.
func (ra *bridgeReadAhead) flushHeldLocked() {
	if ra.held {
		if ra.holdTimer != nil {
			ra.holdTimer.Reset(0)
		}
		return
	}
	ra.isWaiting = false
}

// armHold starts the hold of the read fromDebugger kept back: send sends
// it to the server if no push answered it within holdFor.
func (ra *bridgeReadAhead) armHold(send func()) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if !ra.held {
		return // a push answered it already
	}
	ra.holdGen++
	gen := ra.holdGen
	ra.holdTimer = time.AfterFunc(holdFor, func() {
		if ra.releaseHeld(gen) {
			send()
		}
	})
}

// releaseHeld is the end of hold gen: true if the read is still held, and
// the caller is to send it to the server now.
func (ra *bridgeReadAhead) releaseHeld(gen uint64) bool {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if !ra.held || ra.holdGen != gen {
		return false
	}
	ra.held, ra.holdTimer = false, nil
	return true
}

// stop stops the hold timer (the bridge stops).
func (ra *bridgeReadAhead) stop() {
	ra.mu.Lock()
	ra.stopWaitingLocked()
	ra.mu.Unlock()
}

// clear drops everything kept (the server reported a target state: the
// target restarted or its link was re-established, and what the server
// had not answered yet is gone).
func (ra *bridgeReadAhead) clear() {
	ra.mu.Lock()
	ra.cache.Clear()
	ra.flushHeldLocked()
	ra.late = ra.late[:0]
	ra.mu.Unlock()
}

// fromDebugger looks at a packet from the debugger before it goes to the
// server. A read answered from pushed data returns the reply to give the
// debugger and the hint to send the server instead; otherwise both are nil
// and the packet goes on (after invalidating, if it may change the target).
func (ra *bridgeReadAhead) fromDebugger(p kd.Packet) (reply, hint []byte, hold bool) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.stopWaitingLocked() // the debugger asks something new
	if req, ok := readahead.ReadRequest(p.Type, p.Payload); ok {
		k := readahead.KeyOf(req)
		e, hit := ra.cache.Lookup(k)
		if !hit {
			ra.waiting, ra.isWaiting = req, true
			ra.waiting.Extra = nil
			// At the edge of the pushed data (it starts inside the
			// newest push or where it ended) while pushes are arriving:
			// the push it needs is on its way.
			if ra.pushCount > 0 && k.Address <= ra.pushEnd && k.Address+uint64(ra.pushCount) >= ra.pushEnd &&
				time.Since(ra.pushAt) < holdFor {
				ra.held = true
				ra.stats.Held++
				return nil, nil, true
			}
			return nil, nil, false
		}
		ra.stats.Hits++
		ra.cache.DropBelow(k.Address)
		rep := e.Reply(req)
		return rep.Append(nil), readahead.Encode(ra.sent, req.Append(nil)), false
	}
	if readahead.Invalidates(p.Type, p.Payload) {
		ra.sent++
		ra.cache.Clear()
	}
	return nil, nil, false
}
