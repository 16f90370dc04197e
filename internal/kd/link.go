package kd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Role selects which end of a debug link a Link plays.
type Role uint8

const (
	// RoleHost is the debugger's end: it acknowledges target packets with
	// the sync bit cleared, adopts a restarted target id stream, and does
	// not answer RESET with RESET.
	RoleHost Role = iota + 1
	// RoleTarget is the kernel's end: it answers RESET with RESET and
	// restarts both id streams, starts its send stream with the sync bit,
	// and reports break-in bytes.
	RoleTarget
)

func (r Role) String() string {
	switch r {
	case RoleHost:
		return "host"
	case RoleTarget:
		return "target"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Config tunes a Link. Zero fields take the defaults noted. The role is
// chosen by the constructor (NewHostLink, NewTargetLink).
type Config struct {
	// AckTimeout is how long a sent data packet waits for its ACK before it
	// is sent again (default 500ms).
	AckTimeout time.Duration
	// InterByteTimeout is how long a packet may stall mid-way before the
	// receiver gives up on it, asks for a resend and resynchronises
	// (default 250ms).
	InterByteTimeout time.Duration
	// WriteTimeout bounds each write on the line when the underlying
	// stream supports write deadlines (default 5s).
	WriteTimeout time.Duration
	// QueueLimit bounds delivered-but-unread messages; beyond it incoming
	// data packets are not acknowledged, so the peer retransmits them
	// later (default 256).
	QueueLimit int
	// Trace, if set, is called for every packet sent and received
	// (control packets included), from the link's own goroutine. It must
	// not block and must not keep Payload.
	Trace func(dir Direction, p Packet)
	// Event, if set, is told of what happens on the line besides
	// well-formed packets: break-in bytes, corrupt or stalled packets
	// (answered with RESEND) and retransmissions. It is called from the
	// link's goroutines (SendBreakIn: the caller's) and must not block.
	Event func(e Event)
	// Noise, if set, receives in order the bytes read from the line that
	// were not part of any packet: a target's console text on a shared
	// serial line (boot manager, firmware, hypervisor messages). In the
	// host role this includes lone 0x62 bytes, which only a target
	// receives as break-ins. Called from the link's goroutine; it must
	// not block and must not keep b.
	Noise func(b []byte)
}

// EventKind classifies an Event.
type EventKind uint8

const (
	// EventBreakIn is a break-in byte sent (host) or received (target).
	EventBreakIn EventKind = iota + 1
	// EventCorrupt is a received packet with a bad checksum, length or
	// trailer, or one that stopped mid-way; Packet holds its header.
	EventCorrupt
	// EventRetransmit is a data packet sent again (Reason says why); the
	// packet itself follows through Trace.
	EventRetransmit
)

func (k EventKind) String() string {
	switch k {
	case EventBreakIn:
		return "break-in"
	case EventCorrupt:
		return "corrupt"
	case EventRetransmit:
		return "retransmit"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is a link event reported to Config.Event.
type Event struct {
	Kind   EventKind
	Dir    Direction
	Packet Packet // header fields (no payload) for EventCorrupt and EventRetransmit
	Reason string
}

// Direction tells Trace whether a packet was sent or received.
type Direction uint8

const (
	// Sent marks a packet written to the line.
	Sent Direction = iota + 1
	// Received marks a packet read from the line.
	Received
)

func (l *Link) event(e Event) {
	if l.cfg.Event != nil {
		l.cfg.Event(e)
	}
}

func (c *Config) setDefaults() {
	if c.AckTimeout <= 0 {
		c.AckTimeout = 500 * time.Millisecond
	}
	if c.InterByteTimeout <= 0 {
		c.InterByteTimeout = 250 * time.Millisecond
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 256
	}
}

// MsgKind classifies what Recv returns.
type MsgKind uint8

const (
	// MsgPacket is a new (not duplicate) data packet from the peer.
	MsgPacket MsgKind = iota + 1
	// MsgBreakIn is a break-in byte from the host (target role only).
	MsgBreakIn
	// MsgReset says the peer sent RESET and both id streams restarted. In
	// the target role it is reported only when no state change was being
	// sent (a pending state change is simply re-sent with the new id): a
	// halted target answers it by sending its state change again.
	MsgReset
	// MsgResend says the peer asked for a resend while nothing was pending;
	// a halted target answers it by sending its state change again.
	MsgResend
	// MsgSync says the peer restarted its id stream (a data packet carried
	// the sync bit): in the host role, the target was reset or rebooted.
	// The packet follows as its own MsgPacket.
	MsgSync
)

func (k MsgKind) String() string {
	switch k {
	case MsgPacket:
		return "packet"
	case MsgBreakIn:
		return "break-in"
	case MsgReset:
		return "reset"
	case MsgResend:
		return "resend"
	case MsgSync:
		return "sync"
	}
	return fmt.Sprintf("msg(%d)", uint8(k))
}

// Message is one item delivered by Recv.
type Message struct {
	Kind   MsgKind
	Packet Packet // for MsgPacket; Payload is owned by the receiver
	// ResetSeq, for MsgReset, is how many RESETs the link had received
	// when this one arrived (compare with Stats().ResetsReceived taken
	// before a send to tell whether that send already followed it).
	ResetSeq uint64
}

// readerGrace bounds how long Close waits for the reader goroutine after
// closing the stream.
const readerGrace = 2 * time.Second

// ErrClosed is returned by operations on a closed link.
var ErrClosed = errors.New("kd: link closed")

// ErrRetriesExhausted is returned by SendRetries when the peer never
// acknowledged the packet.
var ErrRetriesExhausted = errors.New("kd: peer did not acknowledge the packet (retries exhausted)")

// ErrPeerRestarted is returned by a send whose packet was meant for a
// session of the target that ended before the packet was acknowledged (the
// target rebooted and started a new one): the packet is not sent into the
// new session, whose boot never asked for it, and its id stays free.
var ErrPeerRestarted = errors.New("kd: the target restarted its session before it acknowledged the packet")

// Link runs the KDCOM link layer over a byte stream in one role: ids, ACKs,
// retransmission, RESEND/RESET handling, resynchronisation and break-in. It
// owns the stream: Close closes it (if it is an io.Closer) and stops the
// link's goroutines.
//
// Data packets are sent with Send (stop-and-wait: one in flight at a time,
// further senders queue) and received with Recv.
type Link struct {
	cfg  Config
	role Role
	rw   io.ReadWriter

	mb   *Mailbox // callers' side: Send, Recv, Done
	quit chan struct{}

	wmu    sync.Mutex // serialises writes on the line
	wbuf   []byte
	cbuf   [HeaderSize]byte // control packets, under wmu
	closed sync.Once

	st Counters

	adopt atomic.Bool // AdoptNext: accept the next data packet's id as it is

	spare Spares // payload buffers given back by Recycle
}

// Recycle gives back the payload of a packet Recv delivered, once the
// caller (and anything it handed the payload to) no longer uses it or any
// slice of it: the link reuses the memory for a later packet, so that a
// receiver that forwards packets allocates nothing per packet. Calling it
// is optional.
func (l *Link) Recycle(b []byte) { l.spare.Put(b) }

// maxSpare bounds the buffers a Spares keeps.
const maxSpare = 4

// Spares keeps a few byte buffers for reuse, so that code that copies
// packet payloads allocates nothing per packet in steady state. The zero
// value is ready; it is safe for concurrent use.
type Spares struct {
	mu   sync.Mutex
	bufs [][]byte
}

// Put gives b back for reuse; nothing may use b afterwards.
func (s *Spares) Put(b []byte) {
	if cap(b) == 0 {
		return
	}
	s.mu.Lock()
	if len(s.bufs) < maxSpare {
		s.bufs = append(s.bufs, b[:0])
	}
	s.mu.Unlock()
}

// Get returns a buffer of n bytes (contents undefined): a spare one if
// one is large enough, else a new one.
func (s *Spares) Get(n int) []byte {
	s.mu.Lock()
	for i := len(s.bufs) - 1; i >= 0; i-- {
		if b := s.bufs[i]; cap(b) >= n {
			last := len(s.bufs) - 1
			s.bufs[i] = s.bufs[last]
			s.bufs[last] = nil
			s.bufs = s.bufs[:last]
			s.mu.Unlock()
			return b[:n]
		}
	}
	s.mu.Unlock()
	// Sizes in steps, so that a spare buffer fits the packets of similar
	// size that follow.
	return make([]byte, n, max(256, (n+255)&^255))
}

type chunk struct {
	b   []byte
	err error
}

// NewHostLink starts a link over rw in the host (debugger) role. The
// caller must Close it.
func NewHostLink(rw io.ReadWriter, cfg Config) *Link { return newLink(rw, RoleHost, cfg) }

// NewTargetLink starts a link over rw in the target (kernel) role. The
// caller must Close it.
func NewTargetLink(rw io.ReadWriter, cfg Config) *Link { return newLink(rw, RoleTarget, cfg) }

func newLink(rw io.ReadWriter, role Role, cfg Config) *Link {
	cfg.setDefaults()
	l := &Link{
		cfg:  cfg,
		role: role,
		rw:   rw,
		mb:   NewMailbox(),
		quit: make(chan struct{}),
	}
	chunks := make(chan chunk, 4)
	free := make(chan []byte, 6)
	for range cap(free) {
		free <- make([]byte, 4096)
	}
	readerDone := make(chan struct{})
	go l.reader(chunks, free, readerDone)
	go l.loop(chunks, free, readerDone)
	return l
}

// Role returns the role the link plays.
func (l *Link) Role() Role { return l.role }

// Stream returns the byte stream the link runs on (to ask it, for
// example, whether it reconnects); only the link reads and writes it.
func (l *Link) Stream() io.ReadWriter { return l.rw }

// String describes the link by its stream, when the stream describes
// itself (e.g. "serial /dev/ttyS0 @115200").
func (l *Link) String() string {
	if s, ok := l.rw.(fmt.Stringer); ok {
		return s.String()
	}
	return "kdcom " + l.role.String()
}

// reader copies the stream into chunks until a read fails or the link quits.
func (l *Link) reader(chunks chan<- chunk, free chan []byte, readerDone chan<- struct{}) {
	defer close(readerDone)
	for {
		var b []byte
		select {
		case b = <-free:
		case <-l.quit:
			return
		}
		n, err := l.rw.Read(b[:cap(b)])
		if n > 0 {
			select {
			case chunks <- chunk{b: b[:n]}:
			case <-l.quit:
				return
			}
		} else {
			free <- b
		}
		if err != nil {
			select {
			case chunks <- chunk{err: err}:
			case <-l.quit:
			}
			return
		}
	}
}

// loopState is owned by the loop goroutine.
type loopState struct {
	dec      Decoder
	sendID   uint32
	expectID uint32
	pending  *SendOp
	queue    Queue
	retx     *time.Timer
	retxOn   bool
	stall    *time.Timer
	stallOn  bool
	reported uint64 // noise bytes already added to stats
	// lastSync is the last sync packet accepted (host role), as long as
	// nothing was accepted since: the only packet a retransmission of it
	// (our ACK lost) can be taken for. 0 once another packet came.
	lastSync    uint32
	lastSyncSum uint32 // its type, length and checksum, see syncSum
}

// syncSum identifies a sync packet's contents: a retransmission carries
// the same bytes, a new boot's first packet (the same id) rarely does.
func syncSum(p Packet) uint32 {
	return uint32(p.Type)<<24 ^ uint32(len(p.Payload))<<12 ^ Checksum(p.Payload)
}

func (l *Link) loop(chunks <-chan chunk, free chan<- []byte, readerDone <-chan struct{}) {
	s := &loopState{sendID: InitialPacketID, expectID: InitialPacketID}
	s.dec.KeepNoise = l.cfg.Noise != nil
	// A host hands console text on whole, 'b' included.
	s.dec.NoBreakIn = l.cfg.Noise != nil && l.role == RoleHost
	if l.role == RoleTarget {
		s.sendID = InitialPacketID | SyncPacketID
	}
	s.retx = time.NewTimer(time.Hour)
	s.retx.Stop()
	s.stall = time.NewTimer(time.Hour)
	s.stall.Stop()
	var err error
	defer func() {
		s.retx.Stop()
		s.stall.Stop()
		if err == nil {
			err = ErrClosed
		}
		if s.pending != nil {
			s.pending.Finish(err)
		}
		// Close the stream and wait for the reader before announcing the
		// end, so that whoever waits on Done or Close may reuse the
		// stream's resources (a port, a socket path) at once. A stream
		// that cannot be closed may leave its reader blocked in Read.
		l.closed.Do(func() { close(l.quit) })
		if l.closeStream() {
			// A stream whose Read is not interrupted by Close (a
			// blocking file descriptor) would hold us here forever:
			// give it a moment, then let its reader end on its own
			// when that Read returns.
			t := time.NewTimer(readerGrace)
			select {
			case <-readerDone:
			case <-t.C:
			}
			t.Stop()
		}
		l.mb.Stop(err)
	}()
	for err == nil {
		var sendReq <-chan *SendOp
		var pendingDone <-chan struct{}
		if s.pending == nil {
			sendReq = l.mb.Requests()
		} else {
			pendingDone = s.pending.Ctx.Done()
		}
		out, head := s.queue.Offer(l.mb.Deliveries())
		select {
		case <-l.quit:
			return
		case c := <-chunks:
			if c.err != nil {
				if errors.Is(c.err, io.EOF) {
					err = fmt.Errorf("kd link: the %s end's peer closed the line: %w", l.role, io.EOF)
				} else {
					err = fmt.Errorf("kd link: read: %w", c.err)
				}
				break
			}
			s.dec.Feed(c.b)
			free <- c.b[:cap(c.b)]
			err = l.drain(s)
		case op := <-sendReq:
			s.pending = op
			op.Pkt.ID = s.sendID
			l.st.PacketsSent.Add(1)
			err = l.transmit(s)
		case <-pendingDone:
			op := s.pending
			s.pending = nil
			s.retx.Stop()
			s.retxOn = false
			op.Finish(op.Ctx.Err())
		case <-s.retx.C:
			s.retxOn = false
			if s.pending != nil {
				op := s.pending
				if op.Retries > 0 && op.Tries > op.Retries {
					s.pending = nil
					if l.role == RoleTarget {
						// A target that gives up assumes the debugger is
						// gone: both streams restart, the next packet
						// carries the sync bit (docs/kd-protocol.md §1.4).
						s.sendID, s.expectID = InitialPacketID|SyncPacketID, InitialPacketID
					}
					op.Finish(ErrRetriesExhausted)
					break
				}
				l.st.Retransmits.Add(1)
				l.retransmitted(s, "no acknowledgement in time")
				err = l.transmit(s)
			}
		case <-s.stall.C:
			s.stallOn = false
			f, ok := s.dec.Abort()
			l.flushNoise(s)
			if ok {
				err = l.handleFrame(s, f)
			}
			if err == nil {
				err = l.drain(s)
			}
		case out <- head:
			s.queue.Pop()
		}
	}
}

// drain handles every complete frame in the decoder and (re)arms the
// inter-byte timer when a packet is half received.
func (l *Link) drain(s *loopState) error {
	for {
		f, ok := s.dec.Next()
		l.flushNoise(s)
		if !ok {
			break
		}
		if err := l.handleFrame(s, f); err != nil {
			return err
		}
	}
	if n := s.dec.Discarded; n > s.reported {
		l.st.NoiseBytes.Add(n - s.reported)
		s.reported = n
	}
	if s.stallOn {
		s.stall.Stop()
		s.stallOn = false
	}
	if s.dec.MidPacket() {
		s.stall.Reset(l.cfg.InterByteTimeout)
		s.stallOn = true
	}
	return nil
}

// flushNoise hands the bytes the decoder skipped to Config.Noise.
func (l *Link) flushNoise(s *loopState) {
	if l.cfg.Noise != nil {
		if b := s.dec.TakeNoise(); len(b) > 0 {
			l.cfg.Noise(b)
		}
	}
}

// retransmitted reports that the pending packet is about to be sent again.
func (l *Link) retransmitted(s *loopState, why string) {
	if l.cfg.Event != nil {
		l.cfg.Event(Event{Kind: EventRetransmit, Dir: Sent, Packet: Packet{Type: s.pending.Pkt.Type, ID: s.pending.Pkt.ID}, Reason: why})
	}
}

var breakInByte = []byte{BreakInByte}

func (l *Link) handleFrame(s *loopState, f Frame) error {
	switch f.Kind {
	case FrameBreakIn:
		if l.role == RoleTarget {
			l.st.BreakInsRecv.Add(1)
			l.event(Event{Kind: EventBreakIn, Dir: Received})
			l.enqueue(s, Message{Kind: MsgBreakIn})
		} else if l.cfg.Noise != nil {
			// Only a target takes 0x62 as a break-in: here it is text.
			l.cfg.Noise(breakInByte)
		}
		return nil
	case FrameCorrupt:
		l.event(Event{Kind: EventCorrupt, Dir: Received, Packet: f.Packet, Reason: f.Reason})
		l.st.Corrupt.Add(1)
		l.st.ResendsSent.Add(1)
		return l.writeControl(TypeResend, 0)
	}
	p := f.Packet
	if l.cfg.Trace != nil {
		l.cfg.Trace(Received, p)
	}
	switch p.Type {
	case TypeAcknowledge:
		if s.pending != nil && p.ID&^SyncPacketID == s.sendID&^SyncPacketID {
			l.ackPending(s, nil)
		}
		return nil
	case TypeResend:
		l.st.ResendsReceived.Add(1)
		if s.pending != nil {
			l.st.Retransmits.Add(1)
			l.retransmitted(s, "the peer asked for a resend")
			return l.transmit(s)
		}
		l.enqueue(s, Message{Kind: MsgResend})
		return nil
	case TypeReset:
		seq := l.st.ResetsReceived.Add(1)
		s.sendID, s.expectID = InitialPacketID, InitialPacketID
		s.lastSync = 0
		if l.role == RoleTarget {
			l.st.ResetsSent.Add(1)
			if err := l.writeControl(TypeReset, 0); err != nil {
				return err
			}
		}
		report := true
		if s.pending != nil {
			if l.role == RoleTarget && s.pending.Pkt.Type == TypeStateChange64 {
				report = false
			}
			s.pending.Pkt.ID = s.sendID
			l.st.Retransmits.Add(1)
			l.retransmitted(s, "the peer reset the link")
			if err := l.transmit(s); err != nil {
				return err
			}
		}
		if report {
			l.enqueue(s, Message{Kind: MsgReset, ResetSeq: seq})
		}
		return nil
	}
	return l.handleData(s, p)
}

func (l *Link) handleData(s *loopState, p Packet) error {
	id := p.ID
	// KDCOM ids are only ever 0x80800000/1, a target's with the sync bit
	// now and then (a host never sets it). The checksum does not cover the
	// id, so anything else is a corrupted header: ask for the packet again
	// rather than adopt a nonsense id stream (BdLib does the same).
	valid := id&^1 == InitialPacketID
	if l.role == RoleHost {
		valid = id&^(SyncPacketID|1) == InitialPacketID
	}
	if !valid {
		l.st.Corrupt.Add(1)
		l.st.ResendsSent.Add(1)
		return l.writeControl(TypeResend, 0)
	}
	if s.queue.Len() >= l.cfg.QueueLimit {
		l.st.Dropped.Add(1)
		return nil // not acknowledged: the peer sends it again later
	}
	ackID := id
	if l.role == RoleHost {
		ackID = id &^ SyncPacketID
	}
	if err := l.writeControl(TypeAcknowledge, ackID); err != nil {
		return err
	}
	sync := l.role == RoleHost && id&SyncPacketID != 0
	if !sync && l.role == RoleHost && l.adopt.Swap(false) {
		// Synchronising with a target whose ids are unknown: take its
		// packet as new and follow its stream from here.
		s.expectID = id
	}
	if sync && s.lastSync == id && s.lastSyncSum == syncSum(p) {
		// The same restart packet again (our ACK was lost) and nothing
		// since: a duplicate, not another restart. With anything accepted
		// since, the same id is a new restart (the target rebooted again)
		// even though an even number of packets brings the ids back to
		// where they were.
		l.st.Duplicates.Add(1)
		return nil
	}
	if sync {
		l.adopt.Store(false)
		s.lastSync, s.lastSyncSum = id, syncSum(p)
		// The target restarted its streams: adopt its id and restart ours.
		s.expectID = id &^ SyncPacketID
		s.sendID = InitialPacketID
		if s.pending != nil {
			s.pending.Pkt.ID = s.sendID
		}
		l.enqueue(s, Message{Kind: MsgSync})
	} else if id != s.expectID {
		l.st.Duplicates.Add(1)
		return nil
	} else {
		s.lastSync = 0 // a packet since the restart: a sync packet now is a new one
	}
	if s.pending != nil && !sync && l.role == RoleTarget {
		// The debugger moved on, so it has our packet: its ACK was lost.
		// A debugger sends nothing new before it has our packet. A
		// kernel's packet is no such proof, so a host keeps its packet
		// pending until it is acknowledged (a kernel that did take it
		// acknowledges the retransmission as a duplicate): a state change
		// may come from a kernel that was running, and stopped on a
		// break-in, without ever seeing a request sent while it ran; a
		// manipulate reply may answer the request before ours, if ours
		// went out as soon as that one was acknowledged; and a kernel
		// waiting for its own ACK that gets our packet instead answers
		// RESEND and drops it. Taking any of these as an ACK loses the
		// request and leaves our id one ahead of the kernel's, which then
		// drops every later request as a duplicate.
		l.ackPending(s, nil)
	}
	s.expectID ^= 1
	l.st.PacketsReceived.Add(1)
	payload := l.spare.Get(len(p.Payload))
	copy(payload, p.Payload)
	l.enqueue(s, Message{Kind: MsgPacket, Packet: Packet{Type: p.Type, ID: id, Payload: payload}})
	return nil
}

func (l *Link) ackPending(s *loopState, err error) {
	op := s.pending
	s.pending = nil
	s.retx.Stop()
	s.retxOn = false
	s.sendID ^= 1
	s.sendID &^= SyncPacketID
	op.Finish(err)
}

// enqueue queues a message for Recv. Data packets are bounded before they
// are acknowledged (handleData); the other messages are bounded here, so a
// peer streaming break-in bytes or RESETs cannot grow memory: a break-in
// right behind another is redundant, and past QueueLimit they are dropped.
func (l *Link) enqueue(s *loopState, m Message) {
	if m.Kind != MsgPacket {
		if s.queue.Len() >= l.cfg.QueueLimit ||
			m.Kind == MsgBreakIn && s.queue.Len() > 0 && s.queue[s.queue.Len()-1].Kind == MsgBreakIn {
			l.st.Dropped.Add(1)
			return
		}
	}
	s.queue.Push(m)
}

// transmit writes the pending packet and arms the retransmission timer.
func (l *Link) transmit(s *loopState) error {
	op := s.pending
	op.Tries++
	op.Epoch = l.st.ResetsReceived.Load()
	if l.cfg.Trace != nil {
		l.cfg.Trace(Sent, op.Pkt)
	}
	l.wmu.Lock()
	l.wbuf = AppendPacket(l.wbuf[:0], op.Pkt)
	err := l.writeLocked(l.wbuf)
	l.wmu.Unlock()
	if s.retxOn {
		s.retx.Stop()
	}
	s.retx.Reset(l.cfg.AckTimeout)
	s.retxOn = true
	return err
}

func (l *Link) writeControl(t PacketType, id uint32) error {
	if l.cfg.Trace != nil {
		l.cfg.Trace(Sent, Packet{Type: t, ID: id})
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.writeLocked(AppendControl(l.cbuf[:0], t, id))
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

func (l *Link) writeLocked(b []byte) error {
	if wd, ok := l.rw.(writeDeadliner); ok {
		_ = wd.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout))
	}
	if _, err := l.rw.Write(b); err != nil {
		return fmt.Errorf("kd link: write: %w", err)
	}
	return nil
}

// Send sends one data packet and waits until the peer acknowledges it,
// retransmitting on time-out, RESEND and RESET, until ctx ends. Only one
// packet is in flight at a time; concurrent callers queue. The payload is
// not retained after Send returns.
func (l *Link) Send(ctx context.Context, t PacketType, payload []byte) error {
	return l.SendRetries(ctx, t, payload, 0)
}

// SendRetries is Send with a retry budget: after retries unacknowledged
// retransmissions it gives up with ErrRetriesExhausted (0 = no budget).
func (l *Link) SendRetries(ctx context.Context, t PacketType, payload []byte, retries int) error {
	_, err := l.send(ctx, t, payload, retries)
	return err
}

// SendEpoch is Send that also reports how many RESETs the link had received
// when the packet was last transmitted: a MsgReset whose ResetSeq is not
// above that number came before the packet, which therefore already went
// out on the restarted id streams.
func (l *Link) SendEpoch(ctx context.Context, t PacketType, payload []byte) (uint64, error) {
	return l.send(ctx, t, payload, 0)
}

func (l *Link) send(ctx context.Context, t PacketType, payload []byte, retries int) (uint64, error) {
	if t.IsControl() || len(payload) > MaxPayload {
		return 0, fmt.Errorf("kd: cannot send a %s packet of %d bytes", t, len(payload))
	}
	return l.mb.Send(ctx, Packet{Type: t, Payload: payload}, retries)
}

// Recv returns the next message from the peer.
func (l *Link) Recv(ctx context.Context) (Message, error) { return l.mb.Recv(ctx) }

// Messages is the channel Recv takes the peer's messages from, for a
// single reader that waits for them in its own select instead of in a
// goroutine of its own that calls Recv (a hand-off per packet less). Wait
// on Done alongside it: once the link stopped nothing more arrives, and
// Err says why. Use either Messages or Recv, not both.
func (l *Link) Messages() <-chan Message { return l.mb.out }

// WriteRaw writes b on the line between packets, never inside one: what a
// kernel's boot text or a firmware message on a shared serial port looks
// like to the debugger (target role; the host's Config.Noise receives it).
// b must not contain packet leaders ("0000", "iiii"); a host-role peer
// takes it as noise.
func (l *Link) WriteRaw(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.writeLocked(b)
}

// SendBreakIn writes a break-in byte (host role).
func (l *Link) SendBreakIn() error {
	l.st.BreakInsSent.Add(1)
	l.event(Event{Kind: EventBreakIn, Dir: Sent})
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.writeLocked([]byte{BreakInByte})
}

// SendReset writes a RESET control packet (host role: asks the target to
// restart both id streams; the link adopts the restart when the target's
// RESET reply arrives).
func (l *Link) SendReset() error {
	l.st.ResetsSent.Add(1)
	return l.writeControl(TypeReset, 0)
}

// AdoptNext makes the link (host role) accept the next data packet from
// the target as new whatever its id, and expect the target's ids to follow
// on from it. A host attaching to a target that kept its ids from an
// earlier debugger uses it so that the target's state change is not taken
// for a retransmission; a packet with the sync bit clears it too.
func (l *Link) AdoptNext() { l.adopt.Store(true) }

// Done is closed when the link has stopped (Close, or a read/write error).
func (l *Link) Done() <-chan struct{} { return l.mb.Done() }

// Err returns why the link stopped, once Done is closed.
func (l *Link) Err() error { return l.mb.Err() }

// Close stops the link and closes the stream. It is safe to call more than
// once and from any goroutine.
func (l *Link) Close() error {
	l.closed.Do(func() { close(l.quit) })
	// Closing the stream also frees a loop stuck in a Write that has no
	// deadline (a peer that stopped reading).
	l.closeStream()
	<-l.mb.Done()
	return nil
}

// closeStream closes the stream if it can be closed, and says whether it
// could.
func (l *Link) closeStream() bool {
	c, ok := l.rw.(io.Closer)
	if ok {
		_ = c.Close()
	}
	return ok
}

// Stats returns a snapshot of the link's counters.
func (l *Link) Stats() Stats { return l.st.Snapshot() }
