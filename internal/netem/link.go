package netem

import (
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// Stats counts what one direction of an emulated link carried.
type Stats struct {
	Bytes    int64 // payload bytes written into the direction
	Segments int64 // segments scheduled (a Write is split at MaxSegment)
	Lost     int64 // segments that paid the retransmission penalty
}

func (s Stats) add(o Stats) Stats {
	return Stats{Bytes: s.Bytes + o.Bytes, Segments: s.Segments + o.Segments, Lost: s.Lost + o.Lost}
}

// segment is a run of bytes that becomes readable at a fixed time.
type segment struct {
	b  []byte
	at time.Time
}

// link is one direction of an emulated connection: writers schedule
// segments, the reader takes them once they are due. It starts no
// goroutines; waiting is done by the caller's goroutine.
type link struct {
	p      Profile // normalised
	jitter *rand.Rand
	loss   *rand.Rand

	mu      sync.Mutex
	segs    []segment
	queued  int       // bytes in segs
	lastTx  time.Time // when the previous segment finished serialising
	lastAt  time.Time // arrival time of the previous segment
	fin     bool      // the writer closed; EOF (or finErr) after the data
	finAt   time.Time // when the FIN arrives
	finErr  error     // returned instead of io.EOF after the data, if set
	rclosed bool      // the reader is gone; writes fail with werr
	werr    error
	changed chan struct{} // closed and replaced on every state change
	stats   Stats
}

// newLink returns one direction of a link under p; dir selects an
// independent random stream so the two directions of one Profile differ.
func newLink(p Profile, dir uint64) *link {
	p = p.normalised()
	return &link{
		p:       p,
		jitter:  rand.New(rand.NewPCG(uint64(p.Seed), 2*dir)),
		loss:    newLossRand(p.Seed, dir),
		changed: make(chan struct{}),
	}
}

// newLossRand is the loss generator of direction dir; the tests replay it.
func newLossRand(seed int64, dir uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 2*dir+1))
}

// signal wakes every waiter. l.mu must be held.
func (l *link) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor blocks until the link changes, d elapses (d < 0: no timer), or
// one of the cancel channels is closed. It reports which cancel channel
// fired: 0 none, 1 closed, 2 deadline.
func waitFor(changed <-chan struct{}, d time.Duration, closed, deadline <-chan struct{}) int {
	var tc <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-changed:
	case <-tc:
	case <-closed:
		return 1
	case <-deadline:
		return 2
	}
	return 0
}

// cancelled reports whether closed (1) or deadline (2) is already closed.
func cancelled(closed, deadline <-chan struct{}) int {
	select {
	case <-closed:
		return 1
	default:
	}
	select {
	case <-deadline:
		return 2
	default:
	}
	return 0
}

// read copies due bytes into b, waiting until at least one byte is due,
// the FIN has arrived, or closed/deadline fires (errLocalClosed /
// errDeadline).
func (l *link) read(b []byte, closed, deadline <-chan struct{}) (int, error) {
	for {
		switch cancelled(closed, deadline) {
		case 1:
			return 0, errLocalClosed
		case 2:
			return 0, errDeadline
		}
		if len(b) == 0 {
			return 0, nil
		}
		l.mu.Lock()
		now := time.Now()
		wait := time.Duration(-1)
		n := 0
		for n < len(b) && len(l.segs) > 0 && !now.Before(l.segs[0].at) {
			s := &l.segs[0]
			c := copy(b[n:], s.b)
			n += c
			s.b = s.b[c:]
			if len(s.b) == 0 {
				l.segs[0] = segment{}
				l.segs = l.segs[1:]
			}
		}
		if n > 0 {
			l.queued -= n
			l.signal()
			l.mu.Unlock()
			return n, nil
		}
		switch {
		case len(l.segs) > 0:
			wait = l.segs[0].at.Sub(now)
		case l.fin:
			if !now.Before(l.finAt) {
				err := l.finErr
				l.mu.Unlock()
				if err == nil {
					err = io.EOF
				}
				return 0, err
			}
			wait = l.finAt.Sub(now)
		}
		ch := l.changed
		l.mu.Unlock()
		switch waitFor(ch, wait, closed, deadline) {
		case 1:
			return 0, errLocalClosed
		case 2:
			return 0, errDeadline
		}
	}
}

// write schedules b as one or more segments, waiting for window space.
func (l *link) write(b []byte, closed, deadline <-chan struct{}) (int, error) {
	n := 0
	for {
		switch cancelled(closed, deadline) {
		case 1:
			return n, errLocalClosed
		case 2:
			return n, errDeadline
		}
		l.mu.Lock()
		if l.rclosed {
			err := l.werr
			l.mu.Unlock()
			return n, err
		}
		if l.fin {
			l.mu.Unlock()
			return n, errLocalClosed
		}
		if len(b) == 0 {
			l.mu.Unlock()
			return n, nil
		}
		chunk := min(len(b), MaxSegment)
		if l.queued == 0 || l.queued+chunk <= l.p.Window {
			l.schedule(b[:chunk], time.Now())
			l.mu.Unlock()
			n += chunk
			b = b[chunk:]
			continue
		}
		ch := l.changed
		l.mu.Unlock()
		switch waitFor(ch, -1, closed, deadline) {
		case 1:
			return n, errLocalClosed
		case 2:
			return n, errDeadline
		}
	}
}

// schedule queues a copy of b, written at now, per the package model.
// l.mu must be held.
func (l *link) schedule(b []byte, now time.Time) {
	start := now
	if l.lastTx.After(start) {
		start = l.lastTx
	}
	txEnd := start
	if l.p.Rate > 0 {
		txEnd = start.Add(time.Duration(int64(len(b)) * int64(time.Second) / l.p.Rate))
	}
	l.lastTx = txEnd
	d := l.p.Delay
	if l.p.Jitter > 0 {
		d += time.Duration(l.jitter.Int64N(2*int64(l.p.Jitter)+1)) - l.p.Jitter
		d = max(d, 0)
	}
	at := txEnd.Add(d)
	if l.p.Loss > 0 && l.loss.Float64() < l.p.Loss {
		at = at.Add(l.p.RTO())
		l.stats.Lost++
	}
	if at.Before(l.lastAt) {
		at = l.lastAt
	}
	l.lastAt = at
	l.segs = append(l.segs, segment{b: append([]byte(nil), b...), at: at})
	l.queued += len(b)
	l.stats.Bytes += int64(len(b))
	l.stats.Segments++
	l.signal()
}

// closeWrite marks the end of the stream: the reader gets the pending data,
// then err (io.EOF when err is nil) once the FIN has crossed the link.
func (l *link) closeWrite(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fin {
		return
	}
	now := time.Now()
	at := now
	if l.lastTx.After(at) {
		at = l.lastTx
	}
	at = at.Add(l.p.Delay)
	if at.Before(l.lastAt) {
		at = l.lastAt
	}
	l.fin, l.finAt, l.finErr = true, at, err
	l.signal()
}

// closeRead records that nobody will read any more: pending data is
// dropped and writers get err.
func (l *link) closeRead(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rclosed {
		return
	}
	l.rclosed, l.werr = true, err
	l.segs, l.queued = nil, 0
	l.signal()
}

// lastArrival is when the last byte (or FIN) written so far arrives.
func (l *link) lastArrival() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fin && l.finAt.After(l.lastAt) {
		return l.finAt
	}
	return l.lastAt
}

func (l *link) snapshot() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}
