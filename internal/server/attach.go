package server

import (
	"fmt"
	"strings"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// Attaching to a KDCOM target (docs/protocol.md, "Attaching to a target").
//
// A kernel keeps its KD state (the ids it sends and expects next, whether
// it is halted) across everything that happens on the wire: an earlier
// kdsrv, a debugger that quit, a VM pipe that was reopened. So whenever
// kdsrv opens a KDCOM link, and whenever the byte stream under it was lost
// and re-established (reconnect), it synchronises the way WinDbg does:
// break-in plus RESET about once a second (resets= bounds the RESETs) until
// the target reports a state change after answering a RESET, and adopts
// the target's ids from that exchange (kd.Attach). A running target is
// broken into: kdsrv cannot agree on ids with a kernel that does not read
// the line, and a debugger attaching to a target expects it stopped.
//
// Until the target has answered a RESET, packets from clients wait in the
// target's queue (bounded by the send budget, see writer); then the ids are
// known and they flow. The state change that completes the synchronisation
// goes to the owning client as usual.
// Ordinary retransmission recovery (RESEND, a lost ACK) never triggers it.

// attachRun is one synchronisation in progress, owned by the pump.
type attachRun struct {
	a       *kd.Attach
	timer   *time.Timer
	why     string // "open", "reconnect" or "resync after dropped packets"
	started time.Time
	told    bool // the owner was told the target does not respond
}

// beginAttach starts synchronising with the target on kl.
func (t *target) beginAttach(kl *kd.Link, why string) *attachRun {
	t.mu.Lock()
	select {
	case <-t.synced:
		t.synced = make(chan struct{})
	default:
	}
	t.syncing = true
	t.mu.Unlock()
	r := &attachRun{
		a: kd.NewAttach(kd.AttachPolicy{
			Resets:       t.spec.Resets,
			Interval:     t.s.cfg.AttachInterval,
			SlowInterval: t.s.cfg.AttachSlowInterval,
		}),
		timer:   time.NewTimer(time.Hour),
		why:     why,
		started: time.Now(),
	}
	// The target may have kept its ids from an earlier debugger: take its
	// next packet as new whatever its id.
	kl.AdoptNext()
	t.attachStep(kl, r, r.a.Start())
	return r
}

// attachStep does what one step of the synchronisation asks for.
func (t *target) attachStep(kl *kd.Link, r *attachRun, st kd.AttachStep) {
	if st.BreakIn {
		if err := kl.SendBreakIn(); err != nil {
			t.log().Warn("target break-in while synchronising failed", logx.Err(err))
		}
	}
	if st.Reset {
		if err := kl.SendReset(); err != nil {
			t.log().Warn("target RESET while synchronising failed", logx.Err(err))
		}
	}
	if st.Wait > 0 {
		r.timer.Reset(st.Wait)
	}
	if st.NotResponding {
		r.told = true
		p := r.a.Policy()
		var next string
		switch {
		case p.Resets == 0:
			next = fmt.Sprintf("a break-in and a RESET every %v (resets=0)", p.Interval)
		case p.Resets > 0:
			next = fmt.Sprintf("a break-in every %v (the %d RESETs of resets=%d are used up)", p.SlowInterval, p.Resets, p.Resets)
		default:
			next = fmt.Sprintf("a break-in and a RESET every %v", p.SlowInterval)
		}
		msg := fmt.Sprintf("target %s does not answer break-in and RESET (%s in %v); check that it is running with debugging enabled and the link settings; kdsrv keeps trying, with %s",
			t.spec, r.a, time.Since(r.started).Round(10*time.Millisecond), next)
		t.log().Warn("target not responding", "detail", msg)
		t.mu.Lock()
		t.notResponding = msg
		owner := t.owner
		t.mu.Unlock()
		if owner != nil {
			owner.sendState(wire.StateNotResponding, msg)
		}
	}
}

// attached ends a synchronisation; the state change that completed it goes
// to fromTarget next.
func (t *target) attached(r *attachRun) {
	r.timer.Stop()
	t.mu.Lock()
	t.syncing = false
	t.notResponding = ""
	owner := t.owner
	t.mu.Unlock()
	t.setSynced()
	t.log().Info("target synchronised", "why", r.why, "attach", fmt.Sprint(r.a))
	if r.told && owner != nil {
		owner.sendState(wire.StateStopped, fmt.Sprintf("target %s answered and is stopped", t.spec))
	}
}

// takeNeedSync reports (and clears) that packets were dropped without an
// acknowledgement, so the ids must be agreed on again.
func (t *target) takeNeedSync() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.needSync
	t.needSync = false
	return n
}

// setSynced lets queued packets go to the target.
func (t *target) setSynced() {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.synced:
	default:
		close(t.synced)
	}
}

// syncedC returns a channel closed while the target is synchronised.
func (t *target) syncedC() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.synced
}

// restarted clears the server's picture of the target after it restarted
// its link or the link was re-established: the stop it was halted in, the
// read-ahead cache, the packet in flight and those queued for the old
// boot. The owner is told why, and the event ("target reconnected",
// "target rebooted") is logged.
func (t *target) restarted(event, why string) {
	t.mu.Lock()
	t.halted = false
	t.lastSC = nil
	t.slow = false
	t.needSync = false // the synchronisation that follows settles the ids
	t.gen++
	cancel := t.inflight
	owner := t.owner
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	t.targetEvent()
	t.log().Info(event, "detail", why)
	if owner != nil {
		owner.sendState(wire.StateReconnected, why)
	}
}

// tellNewOwner gives a client that just opened the target what it must
// know besides the current stop (resendState): that the target does not
// answer.
func (t *target) tellNewOwner(c *client) {
	t.mu.Lock()
	msg := t.notResponding
	t.mu.Unlock()
	if msg != "" {
		c.sendState(wire.StateNotResponding, msg)
	}
}

// optionDiffs describes how a client's trans= differs from the options the
// open link was opened with (baud=, resets=, reconnect), or returns "". A
// target link is shared: the client gets the link as it is open, and is
// told so (docs/transports.md, "Sharing an open target link"). The KDNET
// key is not an option: a different key is refused (acquireTarget).
func optionDiffs(open, asked *spec.Target) string {
	var d []string
	if asked.Baud != 0 && asked.Baud != open.Baud {
		d = append(d, fmt.Sprintf("baud=%d (you asked for baud=%d)", open.Baud, asked.Baud))
	}
	if asked.Resets != open.Resets {
		d = append(d, fmt.Sprintf("%s (you asked for %s)", resetsOption(open.Resets), resetsOption(asked.Resets)))
	}
	if asked.Reconnect != open.Reconnect {
		if open.Reconnect {
			d = append(d, "reconnect (you did not ask for it)")
		} else {
			d = append(d, "no reconnect (you asked for reconnect)")
		}
	}
	if len(d) == 0 {
		return ""
	}
	return "the link was opened earlier and is shared as it is, with " + strings.Join(d, ", ") + "; it keeps these options while kdsrv runs (restart kdsrv to change them)"
}

func resetsOption(n int) string {
	if n < 0 {
		return "no resets= (the default schedule)"
	}
	return fmt.Sprintf("resets=%d", n)
}
