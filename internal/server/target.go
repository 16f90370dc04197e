package server

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/wire"
)

// target is one open kernel debug link. The server plays the debugger's
// (host) end of the KD link layer on it; whole data packets go to and come
// from the client that owns the target.
type target struct {
	s    *Server
	id   uint32 // numbers the links this server opened, for logs
	key  string
	spec *spec.Target

	opening chan struct{} // closed when the link is open (or failed: err)
	err     error

	kdl  kd.Endpoint    // the host (debugger) end of the target's KD link
	out  chan outPacket // packets for the target, in order
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{} // closed when both goroutines ended

	mu      sync.Mutex
	owner   *client
	halted  bool
	lastSC  []byte // payload of the state change the target is stopped in
	slow    bool   // the client was told the target is not responding
	opened  time.Time
	desc    string // how the link is described in logs
	readers sync.WaitGroup
	closed  bool
	ra      *readAhead // read-ahead, once a client enabled it (readahead.go)
	bufs    kd.Spares  // payload buffers of client packets on their way

	// Synchronisation with a KDCOM target (attach.go).
	synced        chan struct{}      // closed while synchronised; packets wait for it
	syncing       bool               // a synchronisation is in progress
	notResponding string             // what the owner was told, while the target does not answer
	gen           uint64             // restarts of the target or its link: older packets are dropped
	inflight      context.CancelFunc // cancels the packet being sent (writer)
	needSync      bool               // packets were dropped unacknowledged: resynchronise at the next stop

	// Observation (observe.go): resyncs seen, console bytes, the
	// STATE_MANIPULATE call in flight for the latency histogram.
	syncs        atomic.Uint64
	consoleBytes atomic.Uint64
	apiPending   kd.APINumber // under mu
	apiSince     time.Time    // under mu
	con          consoleBuf

	// Console watchers (console.go). needAttach (under mu): a watcher
	// opened the link, so without the break-in and RESET of a debugger's
	// open, and no debugger has opened it since.
	needAttach bool
	attachReq  chan struct{} // a debugger asks the pump to synchronise
}

type outPacket struct {
	typ     kd.PacketType
	payload []byte
	from    *client // nil for the server's own packets
	gen     uint64  // target.gen when it was queued
	// breakIn marks a client's break-in request rather than a packet: it
	// is sent to the target after the packets queued before it (queued
	// only while the target is halted; see target.breakIn).
	breakIn bool
	// spare: payload came from target.bufs and goes back there once the
	// packet was sent or dropped.
	spare bool
}

// errKeyMismatch refuses a client whose KDNET key differs from the one the
// open link on that port authenticates with.
var errKeyMismatch = errors.New("the key does not match the one the KDNET link open on this port uses")

// inUseError says a target is owned by another client.
//
// The owner's address and start time are named only to a client on a
// transport with a password: anybody can reach a password-less one.
type inUseError struct {
	target    string
	owner     string    // "" when the asking client may not see it
	since     time.Time // with owner
	takeover  bool      // the client asked to take the target over ...
	needs     string    // ... and lacks these protections of the owner's transport
	takerHint string    // what the client can do about it
}

func (e *inUseError) Error() string {
	who := "another client"
	if e.owner != "" {
		who = fmt.Sprintf("another client (%s, since %s)", e.owner, e.since.Format(time.RFC3339))
	}
	if e.takeover {
		return fmt.Sprintf("target %s is in use by %s on a transport with %s; only a client whose transport also has %s may take it over: %s",
			e.target, who, e.needs, e.needs, e.takerHint)
	}
	return fmt.Sprintf("target %s is in use by %s; ask its user to detach, or open it with -takeover", e.target, who)
}

// protections lists what a transport guards a session with.
func protections(t *spec.Transport) (password, tls bool) {
	return t.Password != "", t.Proto == spec.SSL || t.Proto == spec.SPipe
}

// takeoverNeeds returns the protections of the owner's transport that the
// taker's lacks ("" when it has them all), and a hint.
func takeoverNeeds(owner, taker *spec.Transport) (needs, hint string) {
	opw, otls := protections(owner)
	tpw, ttls := protections(taker)
	var miss []string
	if opw && !tpw {
		miss = append(miss, "a password")
	}
	if otls && !ttls {
		miss = append(miss, "TLS")
	}
	if len(miss) == 0 {
		return "", ""
	}
	var want []string
	if opw {
		want = append(want, "a password")
	}
	if otls {
		want = append(want, "TLS (ssl or spipe)")
	}
	return strings.Join(miss, " and "), "connect through a transport of this server with " + strings.Join(want, " and ") +
		", ask the owner to detach, or ask the operator to start kdsrv with -takeover-any"
}

// inUse builds the refusal of c for target ts owned by old.
func inUse(c, old *client, ts *spec.Target) *inUseError {
	e := &inUseError{target: ts.String()}
	if c.l.t.Password != "" {
		e.owner, e.since = old.from, old.since
	}
	return e
}

// acquireTarget returns the open target for ts owned by c, opening the link
// if nobody has it open.
func (s *Server) acquireTarget(ctx context.Context, c *client, ts *spec.Target, takeover bool) (*target, error) {
	t, opened, err := s.findOrOpen(ctx, ts, func(t *target) { t.owner = c }, func(t *target) error {
		old := t.owner
		if old != nil && old != c {
			if !takeover {
				t.mu.Unlock()
				return inUse(c, old, ts)
			}
			if needs, hint := takeoverNeeds(old.l.t, c.l.t); needs != "" && !s.cfg.TakeoverAny {
				t.mu.Unlock()
				e := inUse(c, old, ts)
				e.takeover, e.needs, e.takerHint = true, needs, hint
				s.warn("takeover refused", "from", c.from, "transport", c.l.ln.Display(), "target", ts.String(),
					"owner", old.from, "owner_transport", old.l.ln.Display(), "missing", needs)
				return e
			}
			t.owner = nil
			t.mu.Unlock()
			c.log().Info("session taken over", append(t.attrs(), "previous_owner", old.from, "previous_session", old.sess.Load())...)
			old.takenOver(t)
			t.mu.Lock()
		}
		t.owner = c
		t.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !opened {
		t.requestAttach()
	}
	return t, nil
}

// findOrOpen is the one way a client gets at a target: it returns the open
// target for ts, or opens the link if nobody has it open. A target this
// call opens is set up by fresh before anybody else can see it (its owner,
// or the needAttach state of a console watcher), and opened says so. A
// target somebody else opened is handed, once its open finished and unless
// it closed since, to share with t.mu held; share unlocks it (share == nil
// shares the target as it is). An open that fails while we wait is retried;
// a KDNET client must know the key the open link authenticates with.
func (s *Server) findOrOpen(ctx context.Context, ts *spec.Target, fresh func(*target), share func(*target) error) (*target, bool, error) {
	key, err := s.cfg.TargetKey(ts)
	if err != nil {
		return nil, false, err
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, false, errors.New("the server is shutting down")
		}
		t := s.targets[key]
		if t == nil {
			t = &target{s: s, id: s.nextTgt.Add(1), key: key, spec: ts, opening: make(chan struct{})}
			fresh(t)
			s.targets[key] = t
			s.wg.Add(1)
			s.mu.Unlock()
			if err := t.open(ctx); err != nil {
				if t.done == nil {
					s.wg.Done() // no goroutines were started to do it
				}
				return nil, false, err
			}
			return t, true, nil
		}
		s.mu.Unlock()
		select {
		case <-t.opening:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("target %s: still being opened by another client: %w", ts, ctx.Err())
		}
		if t.err != nil {
			continue // that open failed and removed itself; try again
		}
		if ts.Kind == spec.TargetNet && subtle.ConstantTimeCompare([]byte(ts.Key), []byte(t.spec.Key)) != 1 {
			// The open KDNET link is authenticated with its own key: a
			// client must know it to share the link.
			return nil, false, fmt.Errorf("target %s: %w", ts, errKeyMismatch)
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			continue
		}
		if share == nil {
			t.mu.Unlock()
		} else if err := share(t); err != nil {
			return nil, false, err
		}
		return t, false, nil
	}
}

// attrs are the log attributes that name the target.
func (t *target) attrs() []any {
	return []any{"target", t.spec.String(), "target_id", t.id}
}

// log is the target's logger: every line names the target.
func (t *target) log() *slog.Logger { return t.s.cfg.Logger.With(t.attrs()...) }

// takenOver tells a client that another one took its target.
func (c *client) takenOver(t *target) {
	c.mu.Lock()
	if c.tgt == t {
		c.tgt = nil
	}
	wc := c.wc
	c.mu.Unlock()
	if wc != nil {
		_ = wc.SendError(wire.InUse, "another client took this target over")
	}
	c.stop(wire.InUse)
}

// open opens the link and starts the target's goroutines. On failure the
// placeholder is removed and waiters see t.err.
func (t *target) open(ctx context.Context) error {
	s := t.s
	ep, err := s.cfg.OpenTarget(withLinkHooks(ctx, t.linkConfig()), t.spec, s.cfg.Allow)
	if err == nil {
		t.kdl = t.observeEndpoint(ep)
	}
	if err != nil {
		t.err = err
		s.mu.Lock()
		delete(s.targets, t.key)
		s.mu.Unlock()
		close(t.opening)
		return err
	}
	t.desc = fmt.Sprint(t.kdl)
	t.out = make(chan outPacket, 64)
	t.synced = make(chan struct{})
	t.ctx, t.stop = context.WithCancel(context.Background())
	t.done = make(chan struct{})
	t.opened = time.Now()
	t.readers.Add(2)
	go t.pump()
	go t.writer()
	go func() {
		t.readers.Wait()
		t.kdl.Close()
		close(t.done)
		s.mu.Lock()
		if s.targets[t.key] == t {
			delete(s.targets, t.key)
		}
		s.mu.Unlock()
		s.wg.Done()
	}()
	close(t.opening)
	t.log().Info("target opened", "link", t.desc)
	s.cfg.Trace.Note(kdtrace.HopTarget, 0, "link", fmt.Sprintf("target %s opened (%s)", t.spec, t.desc))
	if s.isClosed() {
		t.close() // Shutdown ran while the link was opening
		return errors.New("the server is shutting down")
	}
	return nil
}

func (t *target) describe() string {
	return fmt.Sprintf("%s (%s)", t.spec, t.desc)
}

// close stops the target's goroutines and closes the link.
func (t *target) close() {
	select {
	case <-t.opening:
	default:
		return // still opening: the opener owns it
	}
	if t.err != nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.stop()
	t.kdl.Close()
	<-t.done
}

// release drops c's ownership; the link stays open for the next client.
func (t *target) release(c *client) {
	t.mu.Lock()
	released := t.owner == c
	if released {
		t.owner = nil
	}
	t.mu.Unlock()
	if released {
		c.log().Info("session released", t.attrs()...)
	}
	t.releaseReadAhead(c)
}

func (t *target) ownerClient() *client {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.owner
}

// pump delivers what the target sends to the owning client, and answers
// what must not wait when nobody owns the target. On a KDCOM link it also
// synchronises with the target the way a debugger attaches (attach.go):
// when the link opens, and again whenever the byte stream was lost and
// re-established.
func (t *target) pump() {
	defer t.readers.Done()
	defer t.stop()
	msgs, errc := t.receive()
	kl, kdcom := t.kdl.(*kd.Link)
	var rc targetlink.Reconnecter
	var reconnected <-chan struct{}
	if kdcom {
		rc, _ = kl.Stream().(targetlink.Reconnecter)
	}
	if rc != nil {
		reconnected = rc.Reconnected()
	}
	var run *attachRun
	if kdcom {
		if !t.consoleOnly() {
			run = t.beginAttach(kl, "open")
		}
	} else {
		t.setSynced()
	}
	defer func() {
		if run != nil {
			run.timer.Stop()
		}
	}()
	heard := false // KDNET: a target's first packet always carries the sync bit
	for {
		var tick <-chan time.Time
		if run != nil {
			tick = run.timer.C
		}
		select {
		case <-t.ctx.Done():
			return
		case err := <-errc:
			if t.ctx.Err() == nil {
				t.lost(err)
			}
			return
		case <-reconnected:
			reconnected = rc.Reconnected()
			t.restarted("target reconnected", fmt.Sprintf("the link to target %s was re-established (%s); kdsrv cleared what it knew about the target and is synchronising with it again (break-in and RESET)", t.spec, t.desc))
			if run != nil {
				run.timer.Stop()
				run = nil
			}
			if !t.consoleOnly() {
				run = t.beginAttach(kl, "reconnect")
			}
		case <-t.attachReq:
			// A debugger opened a link a console watcher opened.
			if run == nil {
				run = t.beginAttach(kl, "open")
			}
		case <-tick:
			t.attachStep(kl, run, run.a.Tick())
		case m := <-msgs:
			if m.Kind == kd.MsgSync {
				t.syncs.Add(1)
			}
			if run != nil {
				if m.Kind == kd.MsgReset {
					// The target answered a RESET: both id streams are
					// known, so packets may flow before its state change
					// comes (a kernel waiting for the answer to a FILE_IO
					// request, say, sends that request again rather than
					// a state change, and waits for the answer).
					t.setSynced()
				}
				if m.Kind == kd.MsgSync && run.why != "open" {
					t.log().Info("target rebooted", "detail", "its debug link restarted (its first packet carries the sync bit)")
				}
				st, deliver := run.a.Message(m)
				if st.Done {
					t.attached(run)
					run = nil
				} else {
					t.attachStep(kl, run, st)
				}
				if deliver {
					t.fromTarget(m.Packet)
				}
				continue
			}
			if kdcom && m.Kind == kd.MsgPacket && m.Packet.Type == kd.TypeStateChange64 && t.takeNeedSync() {
				// Packets were dropped unacknowledged: the target may or
				// may not have taken them, so the ids are in doubt. Now
				// that it stopped, agree on them again before passing the
				// stop on.
				run = t.beginAttach(kl, "resync after dropped packets")
				st, _ := run.a.Message(m)
				t.attachStep(kl, run, st)
				continue
			}
			switch m.Kind {
			case kd.MsgSync:
				// The target restarted its id streams: it rebooted, or
				// gave up waiting for a debugger and starts afresh.
				if kdcom || heard {
					t.restarted("target rebooted", fmt.Sprintf("target %s restarted its debug link (a packet with the sync bit): it rebooted, or gave up on an unacknowledged packet; kdsrv cleared what it knew about the target", t.spec))
				}
			case kd.MsgPacket:
				heard = true
				t.fromTarget(m.Packet)
			}
		}
	}
}

// receive returns the channels the pump takes the target's messages from
// and the link's error. A KDCOM link hands its messages to the pump
// directly (kd.Link.Messages); other endpoints get a goroutine that calls
// Recv.
func (t *target) receive() (<-chan kd.Message, <-chan error) {
	errc := make(chan error, 1)
	if kl, ok := t.kdl.(*kd.Link); ok {
		t.readers.Add(1)
		go func() {
			defer t.readers.Done()
			select {
			case <-kl.Done():
				errc <- kl.Err()
			case <-t.ctx.Done():
			}
		}()
		return kl.Messages(), errc
	}
	msgs := make(chan kd.Message)
	t.readers.Add(1)
	go func() {
		defer t.readers.Done()
		for {
			m, err := t.kdl.Recv(t.ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-t.ctx.Done():
				return
			}
		}
	}()
	return msgs, errc
}

func (t *target) fromTarget(p kd.Packet) {
	t.apiReply(p)
	if t.raFromTarget(p) {
		return // the reply to the server's own prefetch
	}
	t.mu.Lock()
	if p.Type == kd.TypeStateChange64 {
		t.halted = true
		t.lastSC = p.Payload
	}
	owner := t.owner
	// Once forwarded (copied into the client's frame) the payload is
	// not needed any more, unless it is the stop kept above or read-ahead
	// might keep it.
	reuse := p.Type != kd.TypeStateChange64 && t.ra == nil
	t.mu.Unlock()
	if owner != nil {
		if err := owner.sendKD(uint16(p.Type), p.Payload); err == nil {
			if kl, ok := t.kdl.(*kd.Link); ok && reuse {
				kl.Recycle(p.Payload)
			}
			return
		}
	}
	// Nobody to hand it to: keep the target from stalling.
	switch p.Type {
	case kd.TypeFileIO:
		if f, err := kd.DecodeFileIO(p.Payload); err == nil && f.API == kd.APICreateFile {
			r := kd.NewFileIORefusal(kd.APICreateFile)
			t.enqueue(kd.TypeFileIO, r.Append(nil))
		}
	case kd.TypeDebugIO:
		if d, err := kd.DecodeDebugIO(p.Payload); err == nil && d.API == kd.APIGetString {
			a := d.Answer(nil)
			t.enqueue(kd.TypeDebugIO, a.Append(nil))
		}
	}
}

// fromClient queues a packet from the owning client for the target.
func (t *target) fromClient(c *client, pt uint16, payload []byte) error {
	if t.ownerClient() != c {
		return nil // taken over meanwhile
	}
	if ra := t.readAheadFor(c); ra != nil {
		return ra.fromClient(c, pt, payload)
	}
	typ := kd.PacketType(pt)
	if !t.admit(c, typ, payload) {
		return nil
	}
	buf := t.bufs.Get(len(payload))
	copy(buf, payload)
	t.mu.Lock()
	p := outPacket{typ: typ, payload: buf, from: c, gen: t.gen, spare: true}
	t.mu.Unlock()
	t.push(p)
	return nil
}

// enqueue queues one of the server's own packets for the target.
func (t *target) enqueue(typ kd.PacketType, payload []byte) {
	t.enqueueFrom(nil, typ, payload)
}

func (t *target) enqueueFrom(c *client, typ kd.PacketType, payload []byte) {
	t.mu.Lock()
	p := outPacket{typ: typ, payload: payload, from: c, gen: t.gen}
	t.mu.Unlock()
	t.push(p)
}

func (t *target) push(p outPacket) {
	if t.ctx.Err() != nil {
		return
	}
	select {
	case t.out <- p:
	default:
		// Never block a client's session (or the read-ahead) behind a
		// target that does not take packets.
		t.dropped(p, wire.Busy, fmt.Sprintf("%d packets are already waiting for the target", cap(t.out)))
	}
}

// writer sends queued packets to the target one at a time, once the
// target is synchronised. A packet that is not acknowledged within
// TargetTimeout makes the client hear that the target is not responding;
// sending goes on until the packet is acknowledged or its SendBudget
// (waiting for the synchronisation included) is spent: it is then dropped
// and its sender told (Notice), so one packet the target never takes
// cannot hold up the queue. A packet queued before the target restarted,
// or before its link was re-established, is dropped too: it was meant for
// a boot that is gone.
func (t *target) writer() {
	defer t.readers.Done()
	budget := t.s.cfg.SendBudget
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	st := newSendTimer()
	defer st.stop()
	cur := newAbortCtx(t.ctx) // replaced once it ended
	defer func() { cur.release() }()
	for {
		var p outPacket
		select {
		case p = <-t.out:
		case <-t.ctx.Done():
			return
		}
		more := t.sendOne(p, st, &cur, timer, budget)
		if p.spare {
			t.bufs.Put(p.payload)
		}
		if !more {
			return
		}
	}
}

// sendOne sends one queued packet (or break-in) to the target, or drops
// it (see writer). cur is the writer's send context: replaced when it
// ended. It returns false when the writer must stop (the target is closing
// or its link failed).
func (t *target) sendOne(p outPacket, st *sendTimer, curp **abortCtx, timer *time.Timer, budget time.Duration) bool {
	cur := *curp
	defer func() { *curp = cur }()
	if p.breakIn {
		// Everything the client sent before it has been taken (or
		// dropped): now the break-in cannot overtake a Continue.
		t.sendBreakInNow()
		return true
	}
	start := time.Now()
	if !t.waitSynced(timer, budget) {
		if t.ctx.Err() != nil {
			return false
		}
		t.dropped(p, wire.TargetNotResponding, fmt.Sprintf("kdsrv could not synchronise with the target within %v", budget))
		return true
	}
	t.mu.Lock()
	stale := p.gen != t.gen
	if !stale {
		if cur.Err() != nil {
			cur.release()
			cur = newAbortCtx(t.ctx)
		}
		t.inflight = cur.cancel
	}
	t.mu.Unlock()
	if stale {
		t.dropped(p, wire.TargetUnavailable, "the target restarted, or its link was re-established, after it was sent")
		return true
	}
	t.apiRequest(p.typ, p.payload)
	var why string
	var code wire.Code
	for {
		left := budget - time.Since(start)
		if left <= 0 {
			code = wire.TargetNotResponding
			why = fmt.Sprintf("the target did not acknowledge it within %v", budget)
			break
		}
		st.arm(cur, min(t.s.cfg.TargetTimeout, left))
		err := t.kdl.Send(cur, p.typ, p.payload)
		st.disarm()
		if err == nil {
			break
		}
		if t.ctx.Err() != nil {
			return false
		}
		if errors.Is(err, kd.ErrPeerRestarted) {
			// The link started a session with a rebooted target before
			// this packet was acknowledged; the pump hears of the
			// restart (MsgSync) and tells the client.
			code = wire.TargetUnavailable
			why = "the target restarted before it acknowledged it"
			break
		}
		t.mu.Lock()
		restarted := p.gen != t.gen
		aborted := cur.Err() != nil
		if aborted && !restarted {
			// Timed out (or cancelled by a restart that came before
			// this packet was queued): the next try needs a live
			// context.
			cur.release()
			cur = newAbortCtx(t.ctx)
			t.inflight = cur.cancel
		}
		t.mu.Unlock()
		if restarted {
			code = wire.TargetUnavailable
			why = "the target restarted, or its link was re-established, before it acknowledged it"
			break
		}
		if !aborted {
			return false // the link failed; pump reports it
		}
		if errors.Is(err, context.DeadlineExceeded) && time.Since(start) >= t.s.cfg.TargetTimeout {
			t.setSlow(true)
		}
	}
	t.mu.Lock()
	t.inflight = nil
	t.mu.Unlock()
	if why != "" {
		if code == wire.TargetNotResponding {
			t.mu.Lock()
			t.needSync = true
			t.mu.Unlock()
		}
		t.dropped(p, code, why)
		return true
	}
	t.setSlow(false)
	if kd.Resumes(p.typ, p.payload) {
		t.mu.Lock()
		t.halted = false
		t.lastSC = nil
		t.mu.Unlock()
	}
	return true
}

// waitSynced waits until the target is synchronised, at most budget (on
// timer, which it leaves stopped); false when it was not, or the target
// is closing.
func (t *target) waitSynced(timer *time.Timer, budget time.Duration) bool {
	synced := t.syncedC()
	select {
	case <-synced:
		return true // the usual case: no timer to arm
	default:
	}
	timer.Reset(budget)
	defer timer.Stop()
	select {
	case <-synced:
		return true
	case <-timer.C:
		return false
	case <-t.ctx.Done():
		return false
	}
}

// dropped reports a packet that never reached the target: in the log, and
// to the client that sent it (Notice; its session goes on).
func (t *target) dropped(p outPacket, code wire.Code, why string) {
	who := "kdsrv's own"
	if p.from != nil {
		who = "client " + p.from.String() + "'s"
	}
	what := describePacket(p.typ, p.payload)
	if p.breakIn {
		what = "break-in"
	}
	t.log().Info("packet for the target dropped", "sender", who, "packet", what, "reason", why)
	if p.from != nil {
		p.from.notice(code, fmt.Sprintf("kdsrv dropped your %s for target %s: %s", what, t.spec, why))
	}
}

// describePacket names a KD packet for messages: its type and, for a
// manipulate request, its API.
func describePacket(typ kd.PacketType, payload []byte) string {
	if typ == kd.TypeStateManipulate && len(payload) >= 4 {
		return fmt.Sprintf("%s packet (%v, %d bytes)", typ, kd.APINumber(binary.LittleEndian.Uint32(payload)), len(payload))
	}
	return fmt.Sprintf("%s packet (type %d, %d bytes)", typ, uint16(typ), len(payload))
}

// admit checks a client's packet before it is queued for the target
// (kd.CheckHostPacket). A refused packet never reaches the target; its
// sender gets a Notice naming it and the session goes on.
func (t *target) admit(c *client, typ kd.PacketType, payload []byte) bool {
	err := kd.CheckHostPacket(typ, payload)
	if err == nil {
		return true
	}
	if n := c.refused.Add(1); n == 1 || n%100 == 0 {
		c.log().Info("client packet refused", append(t.attrs(), logx.Err(err), "refused_from_client", n)...)
	}
	c.notice(wire.BadRequest, fmt.Sprintf("kdsrv did not send it to target %s: %v; the session goes on", t.spec, err))
	return false
}

func (t *target) setSlow(slow bool) {
	t.mu.Lock()
	changed := t.slow != slow
	t.slow = slow
	owner := t.owner
	t.mu.Unlock()
	if !changed || owner == nil {
		return
	}
	if slow {
		owner.sendState(wire.StateNotResponding, fmt.Sprintf("target %s does not acknowledge packets (no answer within %v); check that it is running with debugging enabled and the link settings", t.spec, t.s.cfg.TargetTimeout))
	} else {
		owner.sendState(wire.StateRunning, fmt.Sprintf("target %s is responding again", t.spec))
	}
}

// breakIn asks the target to stop, in order with the client's packets: a
// break-in byte that overtook a Continue still waiting for its
// acknowledgement would reach a halted kernel, which ignores it, and the
// target would then run with nobody breaking in. So it waits in the same
// queue as the packets sent before it.
func (t *target) breakIn(c *client) {
	t.mu.Lock()
	p := outPacket{from: c, gen: t.gen, breakIn: true}
	halted := t.halted
	t.mu.Unlock()
	if !halted {
		// The target runs (as far as kdsrv knows): no Continue it has
		// not taken yet can be overtaken, and what is queued or in flight
		// (a request a client sent on a stale picture, say, just before
		// it heard that the target rebooted) waits for the stop this
		// break-in brings: a running kernel acknowledges nothing. Queued
		// behind such a packet, the break-in would wait for its whole
		// send budget.
		t.sendBreakInNow()
		return
	}
	t.push(p)
}

// sendBreakInNow writes a break-in to the target at once.
func (t *target) sendBreakInNow() {
	if err := t.kdl.SendBreakIn(); err != nil {
		t.log().Warn("target break-in failed", logx.Err(err))
	}
}

// resendState sends a halted target's current state change to c.
func (t *target) resendState(c *client) {
	t.mu.Lock()
	sc := t.lastSC
	halted := t.halted
	t.mu.Unlock()
	if halted && sc != nil {
		_ = c.sendKD(uint16(kd.TypeStateChange64), sc)
	}
}

// lost reports a failed target link to its owner.
func (t *target) lost(err error) {
	t.log().Warn("target lost", logx.Err(err))
	t.s.cfg.Trace.Note(kdtrace.HopTarget, 0, "link", fmt.Sprintf("target %s: link lost: %v", t.spec, err))
	if c := t.ownerClient(); c != nil {
		c.sendState(wire.StateLost, err.Error())
		c.mu.Lock()
		wc := c.wc
		c.mu.Unlock()
		if wc != nil {
			_ = wc.SendError(wire.TargetUnavailable, fmt.Sprintf("the link to target %s failed: %v", t.spec, err))
		}
		c.stop(wire.TargetUnavailable)
	}
}

func (t *target) setOption(name, value string) error {
	if strings.EqualFold(name, "readahead") {
		return t.setReadAhead(value)
	}
	return fmt.Errorf("unknown session option %q (known: readahead=on|off)", name)
}
