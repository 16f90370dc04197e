package client

import (
	"context"
	"sync"
	"sync/atomic"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
)

// inprocQueueLimit bounds what one end of an in-process link holds for a
// reader that does not read: past it, a bounded send (SendRetries) fails
// at once and a plain Send waits.
const inprocQueueLimit = 1024

// inprocPair returns the two ends of an in-process KD link between an
// in-process debugger (a kd.Host, the host end) and the bridge (the target
// end). A KD link on a byte stream frames every packet, acknowledges it
// and runs two goroutines an end; between two parts of one program all of
// that only adds hand-offs. Here a packet is a message handed to the other
// end, delivered at once and in order, and acknowledged by being taken. A
// RESET from the host is answered at once (the host hears MsgReset, as
// from a target that answered it), and the bridge gets MsgReset with its
// sequence number, as from a KD link. tr (nil: none) records the packets
// on the debugger-bridge hop, without ids (there are none).
func inprocPair(tr *kdtrace.Tracer) (host, target *inprocEnd) {
	sh := &inprocShared{done: make(chan struct{}), tr: tr}
	host = &inprocEnd{role: kd.RoleHost, sh: sh, q: newInprocQueue()}
	target = &inprocEnd{role: kd.RoleTarget, sh: sh, q: newInprocQueue()}
	host.peer, target.peer = target, host
	return host, target
}

// inprocShared is what both ends of a pair share.
type inprocShared struct {
	done   chan struct{}
	once   sync.Once
	resets atomic.Uint64 // RESETs the host sent (the target end's ResetSeq)
	tr     *kdtrace.Tracer
}

// inprocEnd is one end of an in-process link; it implements kd.Endpoint.
type inprocEnd struct {
	role kd.Role
	sh   *inprocShared
	q    *inprocQueue // what this end receives
	peer *inprocEnd
	st   kd.Counters
}

var _ kd.Endpoint = (*inprocEnd)(nil)

// inprocQueue is an end's inbox.
type inprocQueue struct {
	mu     sync.Mutex
	msgs   kd.Queue
	ready  chan struct{} // signalled (capacity 1) when a message is added
	spaced chan struct{} // signalled (capacity 1) when a message is taken
}

func newInprocQueue() *inprocQueue {
	return &inprocQueue{ready: make(chan struct{}, 1), spaced: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Role is the end this is.
func (e *inprocEnd) Role() kd.Role { return e.role }

// dir is the trace direction of what this end sends.
func (e *inprocEnd) dir() kdtrace.Dir {
	if e.role == kd.RoleHost {
		return kdtrace.ToTarget
	}
	return kdtrace.ToHost
}

// put hands m to the peer. wait says whether to wait for room (a bounded
// send fails at once with kd.ErrRetriesExhausted instead).
func (e *inprocEnd) put(ctx context.Context, m kd.Message, wait bool) error {
	q := e.peer.q
	for {
		select {
		case <-e.sh.done:
			return kd.ErrClosed
		default:
		}
		q.mu.Lock()
		if q.msgs.Len() < inprocQueueLimit || m.Kind != kd.MsgPacket {
			q.msgs.Push(m)
			q.mu.Unlock()
			signal(q.ready)
			return nil
		}
		q.mu.Unlock()
		if !wait {
			e.st.Dropped.Add(1)
			return kd.ErrRetriesExhausted
		}
		select {
		case <-q.spaced:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.sh.done:
			return kd.ErrClosed
		}
	}
}

func (e *inprocEnd) sendPacket(ctx context.Context, t kd.PacketType, payload []byte, wait bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := kd.Packet{Type: t, Payload: append([]byte(nil), payload...)}
	if err := e.put(ctx, kd.Message{Kind: kd.MsgPacket, Packet: p}, wait); err != nil {
		return err
	}
	e.st.PacketsSent.Add(1)
	e.peer.st.PacketsReceived.Add(1)
	e.sh.tr.Packet(kdtrace.HopDebugger, e.dir(), p, false)
	return nil
}

// Send hands a data packet to the other end; it waits only while the
// other end's inbox is full.
func (e *inprocEnd) Send(ctx context.Context, t kd.PacketType, payload []byte) error {
	return e.sendPacket(ctx, t, payload, true)
}

// SendRetries is Send that fails at once with kd.ErrRetriesExhausted when
// retries > 0 and the other end's inbox is full (its reader does not read).
func (e *inprocEnd) SendRetries(ctx context.Context, t kd.PacketType, payload []byte, retries int) error {
	return e.sendPacket(ctx, t, payload, retries <= 0)
}

// SendEpoch is Send that also reports how many RESETs the host had sent
// when the packet was handed over (see kd.Message.ResetSeq).
func (e *inprocEnd) SendEpoch(ctx context.Context, t kd.PacketType, payload []byte) (uint64, error) {
	epoch := e.sh.resets.Load()
	return epoch, e.Send(ctx, t, payload)
}

// Recv returns the next message from the other end.
func (e *inprocEnd) Recv(ctx context.Context) (kd.Message, error) {
	q := e.q
	for {
		q.mu.Lock()
		if q.msgs.Len() > 0 {
			m := q.msgs[0]
			q.msgs.Pop()
			q.mu.Unlock()
			signal(q.spaced)
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return kd.Message{}, ctx.Err()
		case <-e.sh.done:
			return kd.Message{}, kd.ErrClosed
		}
	}
}

// SendBreakIn asks the bridge to stop the target (host end).
func (e *inprocEnd) SendBreakIn() error {
	e.st.BreakInsSent.Add(1)
	e.peer.st.BreakInsRecv.Add(1)
	e.sh.tr.Note(kdtrace.HopDebugger, kdtrace.ToTarget, "break-in", "")
	return e.put(context.Background(), kd.Message{Kind: kd.MsgBreakIn}, true)
}

// SendReset resynchronises (host end): the host hears the answer at once,
// and the bridge gets the RESET with its sequence number.
func (e *inprocEnd) SendReset() error {
	e.st.ResetsSent.Add(1)
	e.peer.st.ResetsReceived.Add(1)
	e.sh.tr.Note(kdtrace.HopDebugger, kdtrace.ToTarget, "reset", "RESET")
	seq := e.sh.resets.Add(1)
	m := kd.Message{Kind: kd.MsgReset, ResetSeq: seq}
	if err := e.put(context.Background(), m, true); err != nil { // to the bridge
		return err
	}
	return e.peer.put(context.Background(), m, true) // the answer, to this end
}

// Stats returns the end's counters.
func (e *inprocEnd) Stats() kd.Stats { return e.st.Snapshot() }

// Done is closed when either end was closed.
func (e *inprocEnd) Done() <-chan struct{} { return e.sh.done }

// Close closes both ends.
func (e *inprocEnd) Close() error {
	e.sh.once.Do(func() { close(e.sh.done) })
	return nil
}
