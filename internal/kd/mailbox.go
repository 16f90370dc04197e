package kd

import (
	"context"
	"sync"
)

// SendOp is one data packet an engine sends for a caller. The engine's
// loop takes it from Mailbox.Requests, transmits it (counting Tries and
// stamping Epoch at each transmission) and reports the outcome once with
// Finish. Engines other than Link (kdnet's) use it too.
type SendOp struct {
	Ctx     context.Context
	Pkt     Packet
	Retries int    // give up after this many retransmissions; 0 = until Ctx ends
	Tries   int    // transmissions so far
	Epoch   uint64 // RESETs received when the packet was last transmitted
	done    chan error
}

// Finish reports the outcome of the op to its sender: nil once the peer
// acknowledged the packet. It is called exactly once per op.
func (op *SendOp) Finish(err error) { op.done <- err }

// Mailbox is the callers' side of an engine that implements Endpoint: Send
// hands a packet to the engine's loop and waits for its outcome (one in
// flight at a time, callers queue), Recv takes the messages the loop
// delivers, and both fail with the engine's error once it stopped. The
// loop reads Requests, writes to Deliveries and calls Stop when it ends.
type Mailbox struct {
	req  chan *SendOp
	out  chan Message
	done chan struct{}
	err  error // set before done is closed
	// ops recycles SendOps and their done channels, so Send allocates
	// nothing in steady state. The pool is the mailbox's own: no channel
	// outlives its engine (an engine inside a testing/synctest bubble never
	// meets another bubble's channel).
	ops sync.Pool
}

// NewMailbox returns a mailbox for one engine.
func NewMailbox() *Mailbox {
	m := &Mailbox{req: make(chan *SendOp), out: make(chan Message), done: make(chan struct{})}
	m.ops.New = func() any { return &SendOp{done: make(chan error, 1)} }
	return m
}

// Requests is where the engine's loop receives the packets to send.
func (m *Mailbox) Requests() <-chan *SendOp { return m.req }

// Wait returns the two channels an engine's loop selects on for its send
// side: with no packet pending, Requests (the next packet to send) and a
// nil channel; with pending in flight, a nil channel and pending's
// context (its sender gave up).
func (m *Mailbox) Wait(pending *SendOp) (requests <-chan *SendOp, abandoned <-chan struct{}) {
	if pending == nil {
		return m.req, nil
	}
	return nil, pending.Ctx.Done()
}

// Deliveries is where the engine's loop hands messages to Recv.
func (m *Mailbox) Deliveries() chan<- Message { return m.out }

// Send hands pkt to the engine and waits until the engine finished it. It
// returns the op's Epoch and outcome; ctx abandons a packet still waiting
// for the engine (one the engine holds ends when the engine sees ctx end).
func (m *Mailbox) Send(ctx context.Context, pkt Packet, retries int) (uint64, error) {
	op := m.ops.Get().(*SendOp)
	op.Ctx, op.Pkt, op.Retries = ctx, pkt, retries
	recycle := func() {
		*op = SendOp{done: op.done}
		m.ops.Put(op)
	}
	select {
	case m.req <- op:
	case <-ctx.Done():
		recycle()
		return 0, ctx.Err()
	case <-m.done:
		recycle()
		return 0, m.err
	}
	err := <-op.done
	epoch := op.Epoch
	recycle()
	return epoch, err
}

// Recv returns the next message the engine delivered.
func (m *Mailbox) Recv(ctx context.Context) (Message, error) {
	select {
	case msg := <-m.out:
		return msg, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-m.done:
		return Message{}, m.err
	}
}

// Stop records why the engine stopped and fails every later Send and
// Recv with err. The engine's loop calls it once, as it ends.
func (m *Mailbox) Stop(err error) {
	m.err = err
	close(m.done)
}

// Done is closed when the engine stopped.
func (m *Mailbox) Done() <-chan struct{} { return m.done }

// Err returns why the engine stopped, once Done is closed.
func (m *Mailbox) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return nil
	}
}

// Queue holds the messages an engine's loop delivered but Recv has not
// taken yet. The loop offers its head in its select and pops it once
// taken; the backing array is reused, so delivering allocates nothing.
type Queue []Message

// Len is the number of queued messages.
func (q Queue) Len() int { return len(q) }

// Offer returns the channel to offer the head on (nil, which blocks
// forever in a select, when the queue is empty) and the head.
func (q Queue) Offer(out chan<- Message) (chan<- Message, Message) {
	if len(q) == 0 {
		return nil, Message{}
	}
	return out, q[0]
}

// Pop drops the head once it was taken.
func (q *Queue) Pop() {
	n := copy(*q, (*q)[1:])
	(*q)[n] = Message{}
	*q = (*q)[:n]
}

// Push appends m.
func (q *Queue) Push(m Message) { *q = append(*q, m) }
