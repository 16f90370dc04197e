package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/readahead"
	"kdsrv/internal/wire"
)

// Read-ahead (session option "readahead=on"; see package readahead for the
// protocol). While the owner reads virtual memory sequentially and the
// target is halted, the server issues the next ReadVirtualMemory requests
// itself, one at a time, keeps the replies, answers the client's requests
// for them at once, and pushes each one to the client so that its bridge
// can answer its debugger without a network round trip.
//
// Order on the target link is kept strict: at most one manipulate request
// is outstanding at the target. A client packet that arrives while a
// prefetch is outstanding waits for that prefetch's reply (it may then be
// answered from it); a prefetch is only issued when no client request is
// waiting for its reply.
//
// Staleness: every client packet other than a ReadVirtualMemory request
// (writes, breakpoints, SetContext, continue, reboot, ...) increments gen
// and clears the cache before it goes to the target, and every target
// packet other than a manipulate reply (state change, DbgPrint, ...) and a
// restart of the target's link increments tgen and clears it too. A
// prefetch reply is kept only if neither changed since its request was
// issued.

// raTimeoutMin bounds how long a prefetch may wait for its reply before the
// client packets held behind it go to the target anyway.
const raTimeoutMin = 2 * time.Second

// readAhead is one target's read-ahead state. It stays attached to the
// target once created, so that a disabled one can still swallow the reply
// to a prefetch that was outstanding when it was disabled.
type readAhead struct {
	t *target

	mu       sync.Mutex
	window   int     // chunks prefetched ahead of the client; grows on catch-ups
	c        *client // the client that enabled it
	disabled bool
	gen      uint32 // invalidating client packets seen since enabled (the push stamp)
	tgen     uint64 // target events seen
	running  bool   // a continue or reboot went out; no state change since
	cache    *readahead.Cache

	// The sequential stream the client is reading.
	tmpl     kd.Manipulate // its last request (processor, union), without data
	seqRun   int           // consecutive sequential requests (0 = no stream)
	seqCount uint32        // the largest read of the stream: the prefetch size
	seqNext  uint64        // where the next sequential request starts
	consumed uint64        // end of the client's last read (served or hinted)
	pfNext   uint64        // next address to prefetch
	pfStop   bool          // a prefetch came back short or failed: the stream ends there

	out     *prefetch       // the server's own request at the target, if any
	orphans []kd.Manipulate // prefetches given up on: their late replies are dropped
	held    []outPacket     // client packets waiting for out's reply, in order
	pending int             // client requests forwarded whose reply has not come

	stats raStats
}

// raStats counts read-ahead activity (tests and logs).
type raStats struct {
	Prefetches uint64 // requests the server issued
	Pushed     uint64 // replies kept and pushed to the client
	Discarded  uint64 // replies dropped because something changed meanwhile
	Hits       uint64 // client requests answered from the server's cache
	Hinted     uint64 // reads the client answered from pushed data
	Held       uint64 // client packets that waited for a prefetch reply
	Invalidate uint64 // cache invalidations
	Widened    uint64 // times the window doubled because the client caught up
}

type prefetch struct {
	req   kd.Manipulate
	gen   uint32
	tgen  uint64
	timer *time.Timer
}

// setReadAhead handles the session option "readahead=on|off".
func (t *target) setReadAhead(value string) error {
	var on bool
	switch strings.ToLower(value) {
	case "on", "1", "true", "yes":
		on = true
	case "off", "0", "false", "no":
	default:
		return fmt.Errorf("readahead=%s: use readahead=on or readahead=off", value)
	}
	c := t.ownerClient()
	if c == nil {
		return fmt.Errorf("readahead: target %s has no owner", t.spec)
	}
	t.mu.Lock()
	ra := t.ra
	if ra == nil && on {
		ra = &readAhead{t: t, window: readahead.DefaultWindow, cache: readahead.NewCache(2 * readahead.MaxWindow)}
		t.ra = ra
		context.AfterFunc(t.ctx, ra.shutdown)
	}
	t.mu.Unlock()
	if ra == nil {
		return nil
	}
	if on {
		ra.enable(c)
		c.log().Info("read-ahead enabled", t.attrs()...)
	} else {
		ra.disable(true)
	}
	return nil
}

// readAheadFor returns the target's read-ahead if c enabled it.
func (t *target) readAheadFor(c *client) *readAhead {
	t.mu.Lock()
	ra := t.ra
	t.mu.Unlock()
	if ra == nil {
		return nil
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.disabled || ra.c != c {
		return nil
	}
	return ra
}

// releaseReadAhead disables read-ahead when its client lets the target go.
func (t *target) releaseReadAhead(c *client) {
	t.mu.Lock()
	ra := t.ra
	t.mu.Unlock()
	if ra == nil {
		return
	}
	ra.mu.Lock()
	mine := ra.c == c
	ra.mu.Unlock()
	if mine {
		ra.disable(false)
	}
}

// targetEvent tells the target's read-ahead, if any, that the target
// restarted its link (reboot or reset).
func (t *target) targetEvent() {
	t.mu.Lock()
	ra := t.ra
	t.mu.Unlock()
	if ra != nil {
		ra.mu.Lock()
		ra.targetChangedLocked(true)
		ra.mu.Unlock()
	}
}

// raFromTarget offers a packet from the target to read-ahead; true means it
// was a prefetch reply and must not be forwarded.
func (t *target) raFromTarget(p kd.Packet) bool {
	t.mu.Lock()
	ra := t.ra
	t.mu.Unlock()
	return ra != nil && ra.fromTarget(p)
}

func (ra *readAhead) enable(c *client) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.c = c
	ra.disabled = false
	ra.gen = 0 // the client starts counting when it enables read-ahead
	ra.tgen++  // prefetches issued before are not for this client
	ra.held = nil
	ra.pending = 0
	ra.running = false
	ra.resetStreamLocked()
	if ra.out != nil {
		ra.orphanLocked()
	}
}

// disable stops read-ahead. With forward, packets held for the client go
// to the target (the client asked to stop); otherwise they are dropped
// (the client left).
func (ra *readAhead) disable(forward bool) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.disabled {
		return
	}
	ra.disabled = true
	ra.tgen++
	ra.resetStreamLocked()
	held := ra.held
	ra.held = nil
	if ra.out != nil {
		ra.orphanLocked()
	}
	if forward {
		for _, p := range held {
			ra.t.enqueueFrom(p.from, p.typ, p.payload)
		}
	}
}

func (ra *readAhead) shutdown() {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.disabled = true
	if ra.out != nil && ra.out.timer != nil {
		ra.out.timer.Stop()
	}
}

func (ra *readAhead) resetStreamLocked() {
	ra.cache.Clear()
	ra.seqRun = 0
	ra.pfStop = false
	ra.stats.Invalidate++
}

// orphanLocked gives up on the outstanding prefetch: its reply, if it ever
// comes, is dropped; packets held behind it go on.
func (ra *readAhead) orphanLocked() {
	p := ra.out
	ra.out = nil
	if p.timer != nil {
		p.timer.Stop()
	}
	if len(ra.orphans) >= 4 {
		ra.orphans = ra.orphans[1:]
	}
	ra.orphans = append(ra.orphans, p.req)
	ra.releaseHeldLocked()
}

// fromClient takes a KD frame from the client that enabled read-ahead, in
// place of target.fromClient's forwarding.
func (ra *readAhead) fromClient(c *client, pt uint16, payload []byte) error {
	if pt == readahead.PacketType {
		stamp, req, err := readahead.Decode(payload)
		if err != nil {
			return c.fail(wire.BadRequest, err.Error())
		}
		ra.mu.Lock()
		defer ra.mu.Unlock()
		if stamp == ra.gen && !ra.disabled {
			ra.stats.Hinted++
			ra.onReadLocked(req)
			ra.maybeIssueLocked()
		}
		return nil
	}
	typ := kd.PacketType(pt)
	if !ra.t.admit(c, typ, payload) {
		return nil
	}
	p := outPacket{typ: typ, payload: append([]byte(nil), payload...), from: c}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if readahead.Invalidates(typ, p.payload) {
		ra.gen++
		ra.resetStreamLocked()
	}
	if ra.out != nil || len(ra.held) > 0 {
		ra.stats.Held++
		ra.held = append(ra.held, p)
		return nil
	}
	ra.sendLocked(p)
	ra.maybeIssueLocked()
	return nil
}

// sendLocked answers a client packet from the cache or forwards it to the
// target. Invalidation was done when the packet arrived.
func (ra *readAhead) sendLocked(p outPacket) {
	if req, ok := readahead.ReadRequest(p.typ, p.payload); ok {
		ra.caughtUpLocked(req)
		if e, hit := ra.cache.Lookup(readahead.KeyOf(req)); hit && !ra.disabled {
			ra.stats.Hits++
			rep := e.Reply(req)
			ra.onReadLocked(req)
			if c := ra.ownerLocked(); c != nil {
				_ = c.sendKD(uint16(kd.TypeStateManipulate), rep.Append(nil))
			}
			return
		}
		ra.onReadLocked(req)
	}
	if p.typ == kd.TypeStateManipulate && len(p.payload) >= kd.ManipulateSize {
		m, _ := kd.DecodeManipulate(p.payload)
		switch {
		case kd.Resumes(p.typ, p.payload):
			ra.running = true
		case m.API == kd.APISwitchProcessor, m.API == kd.APICauseBugCheck:
			// answered by a state change, not a manipulate reply
		default:
			ra.pending++
		}
	}
	ra.t.enqueueFrom(p.from, p.typ, p.payload)
}

// caughtUpLocked widens the window when a read of the running sequential
// stream reached kdsrv: the bridge had no push for it, so the data was not
// far enough ahead of the debugger for this link's bandwidth-delay product
// (the time a push takes to reach the bridge and the hint to come back,
// times the rate the debugger consumes at).
func (ra *readAhead) caughtUpLocked(req kd.Manipulate) {
	if ra.disabled || ra.seqRun < 2 || ra.pfStop || readahead.KeyOf(req).Address != ra.seqNext {
		return
	}
	if ra.window < readahead.MaxWindow {
		ra.window = min(2*ra.window, readahead.MaxWindow)
		ra.stats.Widened++
	}
}

// ownerLocked returns the client to answer, or nil if it no longer owns
// the target.
func (ra *readAhead) ownerLocked() *client {
	if ra.t.ownerClient() != ra.c {
		return nil
	}
	return ra.c
}

func (ra *readAhead) releaseHeldLocked() {
	for len(ra.held) > 0 && ra.out == nil {
		p := ra.held[0]
		ra.held = ra.held[1:]
		ra.sendLocked(p)
	}
}

// onReadLocked follows the client's position in its read stream: reads of
// one processor that each start where the last one ended, whatever their
// sizes. Prefetches use the largest size seen in the stream.
func (ra *readAhead) onReadLocked(req kd.Manipulate) {
	k := readahead.KeyOf(req)
	end := k.Address + uint64(k.Count)
	tk := readahead.KeyOf(ra.tmpl)
	if ra.seqRun > 0 && k.Address == ra.seqNext && k.Processor == tk.Processor && k.ProcessorLevel == tk.ProcessorLevel {
		ra.seqRun++
		ra.seqCount = max(ra.seqCount, min(k.Count, kd.MaxManipulateData))
	} else {
		ra.seqRun = 1
		ra.seqCount = min(k.Count, kd.MaxManipulateData)
		ra.pfNext = end
		ra.pfStop = false
	}
	ra.tmpl = req
	ra.tmpl.Extra = nil
	ra.seqNext = end
	ra.consumed = end
	if ra.pfNext < end {
		ra.pfNext = end
	}
	if end < k.Address || ra.seqCount == 0 {
		ra.pfStop = true // wraps around, or nothing to stream
	}
	ra.cache.DropBelow(k.Address)
}

// maybeIssueLocked sends the next prefetch if the stream, the window and
// the link allow it.
func (ra *readAhead) maybeIssueLocked() {
	if ra.disabled || ra.out != nil || len(ra.held) > 0 || ra.pending > 0 || ra.running ||
		ra.seqRun < 2 || ra.pfStop || ra.ownerLocked() == nil {
		return
	}
	count := uint64(ra.readCount())
	if ra.pfNext+count < ra.pfNext || ra.pfNext >= ra.consumed+uint64(ra.window)*count {
		return
	}
	ra.t.mu.Lock()
	halted := ra.t.halted
	ra.t.mu.Unlock()
	if !halted {
		return
	}
	req := ra.tmpl
	a := req.Memory()
	a.Address, a.Count, a.Actual = ra.pfNext, uint32(count), 0
	req.SetMemory(a)
	req.ReturnStatus = 0
	ra.pfNext += count
	p := &prefetch{req: req, gen: ra.gen, tgen: ra.tgen}
	ra.out = p
	p.timer = time.AfterFunc(max(raTimeoutMin, ra.t.s.cfg.TargetTimeout), func() { ra.expire(p) })
	ra.stats.Prefetches++
	ra.t.enqueue(kd.TypeStateManipulate, req.Append(nil))
}

func (ra *readAhead) readCount() uint32 { return ra.seqCount }

// expire gives up on a prefetch whose reply did not come in time.
func (ra *readAhead) expire(p *prefetch) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.out == p {
		ra.pfStop = true
		ra.orphanLocked()
	}
}

// fromTarget looks at every packet from the target before it is forwarded;
// true means the packet answered a prefetch and is consumed.
func (ra *readAhead) fromTarget(p kd.Packet) bool {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if p.Type != kd.TypeStateManipulate {
		ra.targetChangedLocked(p.Type == kd.TypeStateChange64)
		return false
	}
	rep, err := kd.DecodeManipulate(p.Payload)
	if err != nil {
		return false
	}
	if o := ra.out; o != nil && kd.Matches(o.req, rep) {
		ra.out = nil
		o.timer.Stop()
		if o.gen == ra.gen && o.tgen == ra.tgen && !ra.disabled {
			e := readahead.EntryOf(rep)
			ra.cache.Put(readahead.KeyOf(o.req), e)
			if !e.Complete(o.req.Memory().Count) {
				ra.pfStop = true
			}
			if c := ra.ownerLocked(); c != nil {
				ra.stats.Pushed++
				_ = c.sendKD(readahead.PacketType, readahead.Encode(o.gen, rep.Append(nil)))
			}
		} else {
			ra.stats.Discarded++
		}
		ra.releaseHeldLocked()
		ra.maybeIssueLocked()
		return true
	}
	for i, o := range ra.orphans {
		if kd.Matches(o, rep) {
			ra.orphans = append(ra.orphans[:i], ra.orphans[i+1:]...)
			return true
		}
	}
	// The reply to a client request: forwarded by the caller.
	if ra.pending > 0 {
		ra.pending--
	}
	ra.maybeIssueLocked()
	return false
}

// targetChangedLocked handles a target packet that is not a manipulate
// reply (stop is true for a state change or a link restart).
func (ra *readAhead) targetChangedLocked(stop bool) {
	ra.tgen++
	ra.resetStreamLocked()
	if stop {
		ra.running = false
		ra.pending = 0
	}
	if ra.out != nil {
		ra.orphanLocked() // the target moved on: it will not answer
	}
}

// readAheadStats returns the counters (tests).
func (t *target) readAheadStats() raStats {
	t.mu.Lock()
	ra := t.ra
	t.mu.Unlock()
	if ra == nil {
		return raStats{}
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.stats
}
