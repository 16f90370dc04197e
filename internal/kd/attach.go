package kd

import (
	"fmt"
	"time"
)

// Attach schedule defaults (see AttachPolicy).
const (
	DefaultAttachInterval = time.Second
	DefaultAttachAttempts = 10
	DefaultSlowInterval   = 5 * time.Second
)

// AttachPolicy is the schedule a host follows while it synchronises with a
// KDCOM target: break-in plus RESET, about once per Interval, until the
// target reports a state change. It mirrors WinDbg's resets= option.
type AttachPolicy struct {
	// Resets bounds the RESET packets sent while synchronising, one with
	// each break-in: -1 (resets= not given) sends them Attempts times at
	// Interval and then at SlowInterval; 0 sends them at Interval without
	// limit; N > 0 sends at most N, then only break-ins at SlowInterval.
	Resets int
	// Interval is the pause between attempts (default 1s).
	Interval time.Duration
	// Attempts is how many attempts are made before the target is
	// reported as not responding (default 10).
	Attempts int
	// SlowInterval is the pace of the attempts once the first Attempts
	// (resets= not given) or the N RESETs (resets=N) are used up
	// (default 5s).
	SlowInterval time.Duration
}

func (p *AttachPolicy) setDefaults() {
	p.Interval = orDefault(p.Interval, DefaultAttachInterval)
	p.Attempts = orDefault(p.Attempts, DefaultAttachAttempts)
	p.SlowInterval = orDefault(p.SlowInterval, DefaultSlowInterval)
	if p.Resets < -1 {
		p.Resets = -1
	}
}

// AttachStep tells the driver of an Attach what to do next.
type AttachStep struct {
	BreakIn bool // send a break-in byte
	Reset   bool // send a RESET control packet
	// Wait is how long to wait for the target before calling Tick (zero
	// when Done).
	Wait time.Duration
	// NotResponding is set once, when the target has not answered the
	// first Attempts attempts: tell the user, keep going.
	NotResponding bool
	// Done is set when the target is synchronised: the state change just
	// given to Message is the target's current stop, and both id streams
	// are known.
	Done bool
}

// Attach is the synchronisation state machine of a host attaching to a
// KDCOM target the way debuggers do (kd-protocol.md §1.7): break-in plus
// RESET until a state change arrives, adopting the target's ids from its
// RESET reply and its state change. It does no I/O and reads no clock: the
// driver sends what each AttachStep asks for, waits AttachStep.Wait and
// calls Tick, and feeds every message received from the link to Message.
//
// Synchronisation is complete when a state change arrives after the
// target answered a RESET (both id streams restarted at 0x80800000). A
// state change that came before any RESET reply (a running target that a
// break-in stopped, whose RESET was lost while it ran, or a target that
// just booted) is not passed on: the target answers the next RESET, or one
// already on its way, and sends it again. Only when no RESET may be sent
// any more (resets=N used up) is a state change taken as it is: with the
// sync bit both streams are known; without it the target's ids are adopted
// (the link must accept the packet whatever its id: Link.AdoptNext) and the
// host's send stream is assumed to start at 0x80800000.
type Attach struct {
	p        AttachPolicy
	attempts int  // attempts made (break-in [+ RESET])
	resets   int  // RESETs sent
	reset    bool // the target answered a RESET since the attach began
	sync     bool // the next packet restarts the target's streams
	told     bool // NotResponding was reported
	done     bool
}

// NewAttach returns the state machine for one synchronisation.
func NewAttach(p AttachPolicy) *Attach {
	p.setDefaults()
	return &Attach{p: p}
}

// Policy returns the schedule in use (defaults filled in).
func (a *Attach) Policy() AttachPolicy { return a.p }

// Start returns the first step: break-in and RESET.
func (a *Attach) Start() AttachStep { return a.attempt() }

// Tick is called when the wait of the last step passed with no
// synchronisation.
func (a *Attach) Tick() AttachStep {
	if a.done {
		return AttachStep{Done: true}
	}
	return a.attempt()
}

func (a *Attach) canReset() bool {
	switch {
	case a.p.Resets == 0:
		return true
	case a.p.Resets > 0:
		return a.resets < a.p.Resets
	}
	return true // resets= not given: a RESET with every break-in
}

func (a *Attach) attempt() AttachStep {
	st := AttachStep{BreakIn: true, Wait: a.p.Interval}
	if a.canReset() {
		st.Reset = true
		a.resets++
	}
	switch {
	case a.p.Resets < 0 && a.attempts >= a.p.Attempts:
		st.Wait = a.p.SlowInterval // the attempts are used up: poll slowly
	case a.p.Resets > 0 && !st.Reset:
		st.Wait = a.p.SlowInterval // RESETs used up: poll with break-ins only
	}
	a.attempts++
	if !a.told && (a.attempts > a.p.Attempts || a.p.Resets > 0 && !st.Reset) {
		a.told = true
		st.NotResponding = true
	}
	return st
}

// Message takes one message the link delivered while synchronising. It
// reports whether the message is a packet to pass on (only the state
// change that completes the synchronisation, and packets other than state
// changes and manipulate replies, are: a manipulate reply is a leftover of
// an earlier session).
func (a *Attach) Message(m Message) (st AttachStep, deliver bool) {
	if a.done {
		return AttachStep{Done: true}, true
	}
	switch m.Kind {
	case MsgReset:
		a.reset = true
		return AttachStep{}, false
	case MsgSync:
		a.sync = true
		return AttachStep{}, false
	case MsgPacket:
	default:
		return AttachStep{}, false
	}
	sync := a.sync
	a.sync = false
	switch m.Packet.Type {
	case TypeStateChange64, TypeStateChange32:
	case TypeStateManipulate:
		return AttachStep{}, false
	default:
		return AttachStep{}, true
	}
	if a.reset || sync && a.resets == 0 {
		a.done = true
		return AttachStep{Done: true}, true
	}
	if a.resets > 0 && (a.canReset() || a.p.Resets < 0) {
		// The target stopped (a break-in reached it) but has not answered
		// a RESET yet: it will answer the next one (or one already on its
		// way) and send this state change again.
		return AttachStep{}, false
	}
	// No RESET may be sent: take the target's ids as they are.
	a.done = true
	return AttachStep{Done: true}, true
}

// Done reports whether the target is synchronised.
func (a *Attach) Done() bool { return a.done }

// Attempts returns how many break-in attempts were made, and Resets how
// many RESETs were sent.
func (a *Attach) Attempts() int { return a.attempts }

// Resets returns how many RESET packets the synchronisation sent.
func (a *Attach) Resets() int { return a.resets }

// String describes the progress, for logs.
func (a *Attach) String() string {
	return fmt.Sprintf("%d break-in(s), %d RESET(s)", a.attempts, a.resets)
}

// orDefault returns v, or def when v is not positive (a setting left
// unset).
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
