package server

import (
	"context"
	"sync"
	"time"
)

// abortCtx is the context the target's writer sends packets with. It ends
// when its parent ends, when the packet is abandoned (a target restart:
// abort with context.Canceled) or when a sendTimer fires (abort with
// context.DeadlineExceeded). One abortCtx serves packet after packet until
// it ends, so that forwarding a packet allocates no context, timer or
// channel in steady state (context.WithTimeout per packet did).
type abortCtx struct {
	context.Context // the parent: Deadline and Value

	done   chan struct{}
	once   sync.Once
	err    error // set before done is closed
	cancel context.CancelFunc
	unhook func() bool // stops the parent's AfterFunc
}

func newAbortCtx(parent context.Context) *abortCtx {
	a := &abortCtx{Context: parent, done: make(chan struct{})}
	a.cancel = func() { a.abort(context.Canceled) }
	a.unhook = context.AfterFunc(parent, func() { a.abort(context.Cause(parent)) })
	return a
}

func (a *abortCtx) Done() <-chan struct{} { return a.done }

func (a *abortCtx) Err() error {
	select {
	case <-a.done:
		return a.err
	default:
		return nil
	}
}

// abort ends the context with err (the first call wins).
func (a *abortCtx) abort(err error) {
	a.once.Do(func() {
		a.err = err
		close(a.done)
	})
}

// release detaches a context the writer no longer uses from its parent.
func (a *abortCtx) release() { a.unhook() }

// sendTimer aborts the armed abortCtx with context.DeadlineExceeded when
// its time is up. It is armed and disarmed around each send and reuses one
// timer.
type sendTimer struct {
	t        *time.Timer
	mu       sync.Mutex
	armed    *abortCtx
	deadline time.Time
}

func newSendTimer() *sendTimer {
	st := &sendTimer{}
	st.t = time.AfterFunc(time.Hour, st.fire)
	st.t.Stop()
	return st
}

func (st *sendTimer) fire() {
	st.mu.Lock()
	a := st.armed
	// A callback that started just before a disarm and a new arm must
	// not cut the next send short: only a due deadline aborts.
	if a == nil || time.Now().Before(st.deadline) {
		st.mu.Unlock()
		return
	}
	st.armed = nil
	st.mu.Unlock()
	a.abort(context.DeadlineExceeded)
}

// arm aborts a after d unless disarm comes first.
func (st *sendTimer) arm(a *abortCtx, d time.Duration) {
	st.mu.Lock()
	st.armed, st.deadline = a, time.Now().Add(d)
	st.mu.Unlock()
	st.t.Reset(d)
}

func (st *sendTimer) disarm() {
	st.mu.Lock()
	st.armed = nil
	st.mu.Unlock()
	st.t.Stop()
}

func (st *sendTimer) stop() {
	st.disarm()
}
