// Package deadline is the settable deadline of an emulated or multiplexed
// net.Conn: SetReadDeadline and SetWriteDeadline move it, and blocked calls
// select on its channel next to their other wake-ups.
package deadline

import (
	"sync"
	"time"
)

// Deadline is a settable point in time exposed as a channel that is closed
// once the time has passed. The zero value is not usable; call New.
type Deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	c     chan struct{}
}

// New returns a deadline that is not set.
func New() *Deadline { return &Deadline{c: make(chan struct{})} }

// Set moves the deadline to t; the zero time means none, a time in the
// past expires it at once.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// spent: d.c is closed already or a fired timer is about to close it,
	// so it must not be reused or closed here.
	spent := false
	if d.timer != nil {
		spent = !d.timer.Stop()
		d.timer = nil
	} else {
		select {
		case <-d.c:
			spent = true
		default:
		}
	}
	if spent {
		d.c = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur > 0 {
		c := d.c
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	close(d.c)
}

// Wait returns the channel that is closed when the deadline passes. A
// later Set may replace it: callers take it anew for every wait.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

// Expired reports whether the deadline has passed.
func (d *Deadline) Expired() bool {
	select {
	case <-d.Wait():
		return true
	default:
		return false
	}
}

// Stop releases the timer; the deadline no longer expires until the next
// Set.
func (d *Deadline) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
