package kdnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
)

// Defaults of Config, HostConfig and TargetConfig.
const (
	DefaultAckTimeout      = 250 * time.Millisecond
	DefaultQueueLimit      = 256
	DefaultWriteTimeout    = 2 * time.Second
	DefaultContactInterval = 500 * time.Millisecond // host with a target address
	DefaultPokeInterval    = 3 * time.Second        // target, as Windows does

	// DatagramVersion is the header version byte this implementation's
	// target sends (the captured Windows 8.1 target sent 2). A host echoes
	// the version of the target's last poke.
	DatagramVersion = 2

	// breakInRepeats bounds how often a host repeats an unanswered
	// break-in (UDP may lose it; a target that is already stopped answers
	// every break-in with its state change, so repeats are few).
	breakInRepeats = 8
	// minPokeGap rate-limits pokes a target sends at a host's request.
	minPokeGap = 200 * time.Millisecond
	// supersededRandoms is how many replaced client randoms a host
	// remembers, so that a replayed old poke cannot restart the session.
	supersededRandoms = 16
	// inboundQueue bounds authenticated datagrams waiting for the
	// protocol loop; more are dropped (the peer retransmits).
	inboundQueue = 64
	// logEvery rate-limits repeated warnings (bad datagrams, send errors).
	logEvery = 10 * time.Second
)

// Config holds the settings both roles share. Zero fields take defaults.
type Config struct {
	// Key is the control key (bcdedit /dbgsettings key:a.b.c.d, see
	// ParseKey). Required.
	Key Key
	// AckTimeout is how long a sent data packet waits for its ACK before
	// it is sent again (default 250ms).
	AckTimeout time.Duration
	// QueueLimit bounds received-but-unread messages; beyond it data
	// packets are not acknowledged, so the peer sends them again later
	// (default 256).
	QueueLimit int
	// WriteTimeout bounds each datagram write (default 2s).
	WriteTimeout time.Duration
	// ListenUDP opens the endpoint's socket on a local address (default:
	// a real UDP socket). Tests give an in-memory network here, so that the
	// timers run on testing/synctest's fake clock.
	ListenUDP func(ctx context.Context, addr string) (PacketConn, error)
	// Logger, if set, receives one line per notable event: a new session
	// (info), the first and then periodic summaries of datagrams that
	// failed authentication, send errors (warnings). Lines never contain
	// key material.
	Logger *slog.Logger
}

// PacketConn is the datagram socket a Link owns: a *net.UDPConn, or
// an in-memory stand-in in tests. After Close, reads fail with an error
// that wraps net.ErrClosed.
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetWriteDeadline(t time.Time) error
	LocalAddr() net.Addr
	Close() error
}

// listenUDP opens a real UDP socket on addr.
func listenUDP(ctx context.Context, addr string) (PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func (c *Config) setDefaults() error {
	if c.Key.IsZero() {
		return errors.New("kdnet: no key; give key=a.b.c.d, as shown by bcdedit /dbgsettings on the target")
	}
	c.AckTimeout = orDefault(c.AckTimeout, DefaultAckTimeout)
	c.QueueLimit = orDefault(c.QueueLimit, DefaultQueueLimit)
	c.WriteTimeout = orDefault(c.WriteTimeout, DefaultWriteTimeout)
	if c.ListenUDP == nil {
		c.ListenUDP = listenUDP
	}
	return nil
}

// orDefault returns v, or def when v is not positive (a setting left
// unset).
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// NetStats counts datagram-level events of a Link. All counters only
// grow.
type NetStats struct {
	Received  uint64 // datagrams read from the socket
	Rejected  uint64 // not KDNET, or failed authentication (wrong key, corrupted, forged); never answered
	Foreign   uint64 // from an address other than the configured target (host with a target address)
	Stale     uint64 // authentic but replayed, not advancing, or from a replaced session
	Malformed uint64 // authentic but not understood
	Overflow  uint64 // authentic but dropped because the protocol loop was busy
	Sent      uint64 // datagrams written
	SendError uint64 // datagram writes that failed
	Pokes     uint64 // pokes sent (target) or answered (host)
	Contacts  uint64 // contact datagrams sent (host with a target address)
	Sessions  uint64 // handshakes completed
}

type netStats struct {
	received, rejected, foreign, stale, malformed, overflow atomic.Uint64
	sent, sendError, pokes, contacts, sessions              atomic.Uint64
}

// Link is the KDNET engine: one end of a KD link over UDP, the host
// (debugger) end made by ListenHost or the target (kernel) end made by
// DialTarget. It runs the handshake, the packet ids, ACKs, retransmission,
// RESEND/RESET and break-in, and implements the kd.Endpoint contract as
// kd.Link (the KDCOM engine) does.
//
// It owns its UDP socket and two goroutines (socket reader and protocol
// loop); Close stops both. Memory is bounded whatever arrives: datagrams
// are read into one reused buffer, rejected ones cost only a counter, and
// the queues between the goroutines and toward the reader of Recv are
// bounded.
type Link struct {
	role    kd.Role
	cfg     Config
	conn    PacketConn
	local   netip.AddrPort
	desc    string
	ctlKey  [KeySize]byte
	ctl     *Sealer
	sealer  atomic.Pointer[Sealer] // the current session's (data key once in session)
	win     SeqWindow
	hasDuty bool // a periodic duty runs: pokes (target) or contacts (host with a target address)

	// host role
	target       netip.Addr // optional: contact it and accept only it
	contactEvery time.Duration
	// target role
	host         netip.AddrPort
	pokeEvery    time.Duration
	clientRandom [randomSize]byte // of every poke

	in      chan inbound
	mb      *kd.Mailbox // callers' side: Send, Recv, Done
	ctlReq  chan ctlOp
	quit    chan struct{}
	readers sync.WaitGroup
	closed  sync.Once

	st  kd.Counters
	nst netStats
}

type inbound struct {
	d       Datagram // Payload is owned by the loop
	from    netip.AddrPort
	sealer  *Sealer       // the sealer that opened it
	handled chan struct{} // if set, signalled once the loop handled it
}

type ctlOp uint8

const (
	opBreakIn ctlOp = iota + 1
	opReset
)

// loopState is owned by the loop goroutine.
type loopState struct {
	session  bool
	used     bool // the session carried data-channel traffic from the peer
	peer     netip.AddrPort
	version  uint8
	sendID   uint32 // id of the pending packet, or of the next new one
	lastRecv uint32
	haveRecv bool
	pending  *kd.SendOp
	queue    kd.Queue
	retx     *time.Timer
	retxOn   bool
	wbuf     []byte
	pbuf     []byte
	lastWarn time.Time

	// host role
	clientRandom [randomSize]byte // of the current session
	response     []byte           // response body of the current session
	superseded   [supersededRandoms][randomSize]byte
	nSuperseded  int
	supNext      int
	// Liveness of the current session, so that a poke replayed from an
	// earlier boot cannot take a live session away: lastAlive is when the
	// target last proved it holds this session (authentic, advancing
	// data, or a keep-alive poke once data flowed); probeAt is when the
	// host last asked it to poke at once (an empty control datagram)
	// because a poke with another client random arrived.
	lastAlive time.Time
	probeAt   time.Time
	deferred  bool // a new client random was held off in this session (logged once)
	breakLeft int  // break-in repeats still to send
	wantBreak bool
	brk       *time.Timer
	brkOn     bool

	// target role
	dataKey  [KeySize]byte
	lastPoke time.Time
}

// openLink makes the link in role over the socket conn, lets setup fill
// in the role's fields and description, and starts its goroutines. On
// failure conn is closed.
func openLink(role kd.Role, cfg Config, conn PacketConn, setup func(e *Link) error) (*Link, error) {
	e := &Link{
		role:   role,
		cfg:    cfg,
		conn:   conn,
		ctlKey: cfg.Key.Bytes(),
		in:     make(chan inbound, inboundQueue),
		mb:     kd.NewMailbox(),
		ctlReq: make(chan ctlOp),
		quit:   make(chan struct{}),
	}
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		e.local = ap
	}
	ctl, err := NewSealer(e.ctlKey)
	if err == nil {
		err = setup(e)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	e.ctl = ctl
	e.sealer.Store(ctl)
	e.readers.Add(1)
	go e.reader()
	go e.loop()
	return e, nil
}

// log returns the endpoint's logger (one that discards when none is
// configured); its lines name the endpoint.
func (e *Link) log() *slog.Logger {
	return logx.OrDiscard(e.cfg.Logger).With("kdnet", e.desc)
}

// String describes the endpoint (never the key).
func (e *Link) String() string { return e.desc }

// Role returns the role the endpoint plays.
func (e *Link) Role() kd.Role { return e.role }

// LocalAddr returns the local UDP address.
func (e *Link) LocalAddr() netip.AddrPort { return e.local }

// reader reads datagrams, authenticates them and hands the authentic ones
// to the loop. It allocates only for authentic datagrams.
func (e *Link) reader() {
	defer e.readers.Done()
	buf := make([]byte, MaxDatagram+1)
	handled := make(chan struct{}, 1)
	var lastLog time.Time
	var sinceLog uint64
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (for example an ICMP error reported on
			// Windows): keep reading, but do not spin.
			select {
			case <-e.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		e.nst.received.Add(1)
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if e.target.IsValid() && from.Addr() != e.target {
			e.nst.foreign.Add(1)
			continue
		}
		s := e.sealer.Load()
		var d Datagram
		if n > MaxDatagram {
			err = ErrLength
		} else {
			d, err = s.OpenInPlace(buf[:n])
		}
		if err == nil && d.HostToTarget != (e.role == kd.RoleTarget) {
			err = ErrAuth // our own direction reflected back at us
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrMalformed), errors.Is(err, ErrChannel):
				e.nst.malformed.Add(1)
			case errors.Is(err, ErrNoDataKey):
				e.nst.stale.Add(1) // data from a session we have not (yet) joined
			default:
				e.nst.rejected.Add(1)
				sinceLog++
				if now := time.Now(); now.Sub(lastLog) >= logEvery {
					e.log().Warn("ignored datagrams that are not KDNET or failed authentication; if that is the target, check that key= matches its bcdedit /dbgsettings key",
						"count", sinceLog, "latest_from", from.String(), "bytes", n)
					lastLog, sinceLog = now, 0
				}
			}
			continue
		}
		d.Payload = append([]byte(nil), d.Payload...)
		in := inbound{d: d, from: from, sealer: s}
		if d.Channel == ChannelControl {
			// A handshake may change the data key: wait until the loop
			// has handled it before opening the next datagram with it.
			in.handled = handled
		}
		select {
		case e.in <- in:
		default:
			e.nst.overflow.Add(1)
			continue
		}
		if in.handled != nil {
			select {
			case <-handled:
			case <-e.quit:
				return
			}
		}
	}
}

func (e *Link) loop() {
	s := &loopState{version: DatagramVersion}
	if e.role == kd.RoleHost {
		s.sendID = HostInitialID
		if e.target.IsValid() {
			s.peer = e.contactAddr()
		}
	} else {
		var b [4]byte
		_, _ = rand.Read(b[:])
		// Any even start works; keep it clear of the host's range.
		s.sendID = (uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])) &^ 1
		s.peer = e.host
	}
	s.retx = stoppedTimer()
	s.brk = stoppedTimer()
	duty := stoppedTimer()
	if e.hasDuty {
		duty.Reset(0)
	}
	var err error
	defer func() {
		s.retx.Stop()
		s.brk.Stop()
		duty.Stop()
		if err == nil {
			err = kd.ErrClosed
		}
		if s.pending != nil {
			s.pending.Finish(err)
		}
		// The socket is closed and its reader gone before Done/Close
		// return, so the port can be bound again at once.
		e.closed.Do(func() { close(e.quit) })
		_ = e.conn.Close()
		e.readers.Wait()
		e.mb.Stop(err)
	}()
	for err == nil {
		sendReq, pendingDone := e.mb.Wait(s.pending)
		out, head := s.queue.Offer(e.mb.Deliveries())
		select {
		case <-e.quit:
			return
		case in := <-e.in:
			err = e.handle(s, in)
			if in.handled != nil {
				select {
				case in.handled <- struct{}{}:
				default:
				}
			}
		case op := <-sendReq:
			s.pending = op
			op.Pkt.ID = s.sendID
			e.st.PacketsSent.Add(1)
			err = e.transmit(s)
		case <-pendingDone:
			op := s.pending
			s.pending = nil
			e.stopRetx(s)
			// The id is kept: a caller that gives up waiting sends the
			// same packet again, which the peer must see as a repeat.
			op.Finish(op.Ctx.Err())
		case <-s.retx.C:
			s.retxOn = false
			if op := s.pending; op != nil {
				if op.Retries > 0 && op.Tries > op.Retries {
					s.pending = nil
					// The peer may have it; the next packet gets a new id
					// so it is not taken for a repeat.
					s.sendID += IDStep
					op.Finish(kd.ErrRetriesExhausted)
					break
				}
				e.st.Retransmits.Add(1)
				err = e.transmit(s)
			}
		case <-s.brk.C:
			s.brkOn = false
			err = e.repeatBreakIn(s)
		case <-duty.C:
			var next time.Duration
			next, err = e.periodic(s)
			if next > 0 {
				duty.Reset(next)
			}
		case op := <-e.ctlReq:
			err = e.control(s, op)
		case out <- head:
			s.queue.Pop()
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// periodic runs the role's timed duty and returns when to run it next.
func (e *Link) periodic(s *loopState) (time.Duration, error) {
	if e.role == kd.RoleTarget {
		return e.pokeEvery, e.poke(s)
	}
	if s.session {
		return 0, nil // the target found us: stop contacting it
	}
	e.nst.contacts.Add(1)
	return e.contactEvery, e.write(s, ChannelControl, e.win.NextSeq(), nil)
}

// handle processes one authenticated datagram.
func (e *Link) handle(s *loopState, in inbound) error {
	if in.d.Channel == ChannelControl {
		if e.role == kd.RoleHost {
			return e.hostControl(s, in)
		}
		return e.targetControl(s, in)
	}
	if !s.session || in.sealer != e.sealer.Load() {
		e.nst.stale.Add(1) // opened with a replaced session's key
		return nil
	}
	if err := e.win.Accept(in.d); err != nil {
		e.nst.stale.Add(1)
		return nil
	}
	s.used = true
	if e.role == kd.RoleHost {
		s.peer = in.from // authentic and advancing: follow a NAT rebinding
		s.lastAlive = time.Now()
	}
	kind, p, err := ParsePacket(in.d.Payload)
	if err != nil {
		e.nst.malformed.Add(1)
		e.st.Corrupt.Add(1)
		e.st.ResendsSent.Add(1)
		return e.sendControl(s, kd.TypeResend, 0)
	}
	switch kind {
	case KindBreakIn:
		if e.role == kd.RoleTarget {
			if s.pending != nil && s.pending.Pkt.Type == kd.TypeStateChange64 {
				return nil // already reporting a stop: a repeated break-in
			}
			e.st.BreakInsRecv.Add(1)
			e.notify(s, kd.Message{Kind: kd.MsgBreakIn})
		}
	case KindPseudo:
		if e.role == kd.RoleHost {
			// What WinDbg answers: the target then sends its state.
			e.st.ResendsSent.Add(1)
			return e.sendControl(s, kd.TypeResend, 0)
		}
	case KindControl:
		return e.handleControl(s, p)
	case KindData:
		return e.handleData(s, p)
	}
	return nil
}

func (e *Link) handleControl(s *loopState, p kd.Packet) error {
	switch p.Type {
	case kd.TypeAcknowledge:
		if s.pending != nil && p.ID == s.pending.Pkt.ID {
			op := s.pending
			s.pending = nil
			e.stopRetx(s)
			s.sendID += IDStep
			op.Finish(nil)
		}
	case kd.TypeResend:
		e.st.ResendsReceived.Add(1)
		if s.pending != nil {
			e.st.Retransmits.Add(1)
			return e.transmit(s)
		}
		e.notify(s, kd.Message{Kind: kd.MsgResend})
	case kd.TypeReset:
		seq := e.st.ResetsReceived.Add(1)
		// In the host role a RESET is the target's answer to ours: not
		// news for the owner, and the target's ids go on (it re-sends its
		// pending packet with the same id, a repeat if we have it).
		report := e.role == kd.RoleTarget
		if e.role == kd.RoleTarget {
			// The RESET's id is the host's next one, which may restart
			// its numbering: whatever comes next is new.
			s.haveRecv = false
			// Windows answers with its current id and re-sends its
			// pending packet with that same id.
			e.st.ResetsSent.Add(1)
			if err := e.sendControl(s, kd.TypeReset, s.sendID); err != nil {
				return err
			}
			if s.pending != nil && s.pending.Pkt.Type == kd.TypeStateChange64 {
				report = false
			}
		}
		if s.pending != nil {
			e.st.Retransmits.Add(1)
			if err := e.transmit(s); err != nil {
				return err
			}
		}
		if report {
			e.notify(s, kd.Message{Kind: kd.MsgReset, ResetSeq: seq})
		}
	}
	return nil
}

func (e *Link) handleData(s *loopState, p kd.Packet) error {
	if s.queue.Len() >= e.cfg.QueueLimit {
		e.st.Dropped.Add(1)
		return nil // not acknowledged: the peer sends it again later
	}
	if err := e.sendControl(s, kd.TypeAcknowledge, p.ID); err != nil {
		return err
	}
	if s.haveRecv && p.ID == s.lastRecv {
		e.st.Duplicates.Add(1)
		return nil
	}
	s.haveRecv, s.lastRecv = true, p.ID
	e.st.PacketsReceived.Add(1)
	if e.role == kd.RoleHost && p.Type == kd.TypeStateChange64 {
		s.breakLeft = 0 // the break-in was answered
		e.stopBreak(s)
	}
	s.queue.Push(kd.Message{Kind: kd.MsgPacket, Packet: p})
	return nil
}

// notify queues a message that is not a data packet. Past QueueLimit it
// is dropped (counted in Dropped), so a peer cannot grow the queue of an
// owner that does not read.
func (e *Link) notify(s *loopState, m kd.Message) {
	if s.queue.Len() >= e.cfg.QueueLimit {
		e.st.Dropped.Add(1)
		return
	}
	s.queue.Push(m)
}

// control runs a break-in or reset request from a caller.
func (e *Link) control(s *loopState, op ctlOp) error {
	switch op {
	case opBreakIn:
		s.breakLeft = breakInRepeats
		if !s.session {
			s.wantBreak = true // sent as soon as the target pokes
			return nil
		}
		return e.repeatBreakIn(s)
	case opReset:
		e.st.ResetsSent.Add(1)
		if s.session {
			return e.sendControl(s, kd.TypeReset, s.sendID)
		}
	}
	return nil
}

// repeatBreakIn sends a break-in datagram and schedules a repeat until a
// state change arrives or the repeats run out.
func (e *Link) repeatBreakIn(s *loopState) error {
	if s.breakLeft <= 0 || !s.session {
		return nil
	}
	s.breakLeft--
	e.st.BreakInsSent.Add(1)
	e.stopBreak(s)
	s.brk.Reset(2 * e.cfg.AckTimeout)
	s.brkOn = true
	return e.write(s, ChannelData, e.win.NextSeq(), []byte{kd.BreakInByte})
}

func (e *Link) stopBreak(s *loopState) {
	if s.brkOn {
		s.brk.Stop()
		s.brkOn = false
	}
}

func (e *Link) stopRetx(s *loopState) {
	if s.retxOn {
		s.retx.Stop()
		s.retxOn = false
	}
}

// transmit sends the pending packet (if a session is up) and arms the
// retransmission timer.
func (e *Link) transmit(s *loopState) error {
	op := s.pending
	op.Tries++
	op.Epoch = e.st.ResetsReceived.Load()
	var err error
	if s.session {
		s.pbuf = AppendPacket(s.pbuf[:0], op.Pkt)
		err = e.write(s, ChannelData, e.win.NextSeq(), s.pbuf)
	}
	e.stopRetx(s)
	s.retx.Reset(e.cfg.AckTimeout)
	s.retxOn = true
	return err
}

func (e *Link) sendControl(s *loopState, t kd.PacketType, id uint32) error {
	var b [kd.HeaderSize]byte
	return e.write(s, ChannelData, e.win.NextSeq(), kd.AppendControl(b[:0], t, id))
}

// write seals and sends one datagram to the peer. Only a closed socket is
// an error; other write failures are counted (the retransmission timer
// tries again).
func (e *Link) write(s *loopState, ch Channel, seq uint64, payload []byte) error {
	if !s.peer.IsValid() {
		return nil
	}
	sealer := e.ctl
	if ch == ChannelData {
		sealer = e.sealer.Load()
	}
	b, err := sealer.Seal(s.wbuf[:0], Datagram{
		Version:      s.version,
		Channel:      ch,
		Seq:          seq,
		HostToTarget: e.role == kd.RoleHost,
		Payload:      payload,
	})
	if err != nil {
		return fmt.Errorf("kdnet: %s: %w", e.desc, err)
	}
	s.wbuf = b
	_ = e.conn.SetWriteDeadline(time.Now().Add(e.cfg.WriteTimeout))
	if _, err := e.conn.WriteToUDPAddrPort(b, s.peer); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("kdnet: %s: %w", e.desc, err)
		}
		e.nst.sendError.Add(1)
		if now := time.Now(); now.Sub(s.lastWarn) >= logEvery {
			s.lastWarn = now
			e.log().Warn("KDNET send failed; will retry", "to", s.peer.String(), logx.Err(err))
		}
		return nil
	}
	e.nst.sent.Add(1)
	return nil
}

// Send sends one data packet and waits until the peer acknowledges it,
// retransmitting on time-out, RESEND and RESET, until ctx ends. Before the
// handshake the packet waits for the session. Only one packet is in
// flight at a time; concurrent callers queue. The payload is not retained
// after Send returns.
func (e *Link) Send(ctx context.Context, t kd.PacketType, payload []byte) error {
	_, err := e.send(ctx, t, payload, 0)
	return err
}

// SendRetries is Send with a retry budget: after retries unacknowledged
// retransmissions it gives up with kd.ErrRetriesExhausted (0 = no budget).
func (e *Link) SendRetries(ctx context.Context, t kd.PacketType, payload []byte, retries int) error {
	_, err := e.send(ctx, t, payload, retries)
	return err
}

// SendEpoch is Send that also reports how many RESETs had been received
// when the packet was last transmitted (see kd.Link.SendEpoch).
func (e *Link) SendEpoch(ctx context.Context, t kd.PacketType, payload []byte) (uint64, error) {
	return e.send(ctx, t, payload, 0)
}

func (e *Link) send(ctx context.Context, t kd.PacketType, payload []byte, retries int) (uint64, error) {
	if t.IsControl() || t == kd.TypeUnused || t >= kd.TypeMax || len(payload) > kd.MaxPayload {
		return 0, fmt.Errorf("kdnet: cannot send a %s packet of %d bytes", t, len(payload))
	}
	return e.mb.Send(ctx, kd.Packet{Type: t, Payload: payload}, retries)
}

// Recv returns the next message from the peer: MsgPacket for new data
// packets, MsgResend for a RESEND while nothing was pending; in the target
// role also MsgBreakIn and MsgReset; in the host role MsgSync when the
// target started a new session (it rebooted or its link restarted) after
// a session that carried traffic.
func (e *Link) Recv(ctx context.Context) (kd.Message, error) { return e.mb.Recv(ctx) }

// SendBreakIn asks the target to stop (host role). The break-in datagram
// is repeated a few times until the target reports a state change, as UDP
// may lose it; before the handshake it is sent as soon as the target
// pokes.
func (e *Link) SendBreakIn() error {
	if e.role != kd.RoleHost {
		return errors.New("kdnet: only the host sends break-ins")
	}
	return e.request(opBreakIn)
}

// SendReset sends a RESET control packet (host role): the target answers
// with RESET and sends its pending packet again.
func (e *Link) SendReset() error {
	if e.role != kd.RoleHost {
		return errors.New("kdnet: only the host sends RESET")
	}
	return e.request(opReset)
}

func (e *Link) request(op ctlOp) error {
	select {
	case e.ctlReq <- op:
		return nil
	case <-e.mb.Done():
		return e.mb.Err()
	}
}

// Done is closed when the endpoint has stopped.
func (e *Link) Done() <-chan struct{} { return e.mb.Done() }

// Close stops the endpoint's goroutines and closes its socket. It is safe
// to call more than once and from any goroutine.
func (e *Link) Close() error {
	e.closed.Do(func() { close(e.quit) })
	<-e.mb.Done()
	return nil
}

// Stats returns the KD link counters (NoiseBytes is always 0: datagrams
// are authenticated whole).
func (e *Link) Stats() kd.Stats { return e.st.Snapshot() }

var _ kd.Endpoint = (*Link)(nil)

// NetStats returns the datagram counters.
func (e *Link) NetStats() NetStats {
	return NetStats{
		Received:  e.nst.received.Load(),
		Rejected:  e.nst.rejected.Load(),
		Foreign:   e.nst.foreign.Load(),
		Stale:     e.nst.stale.Load(),
		Malformed: e.nst.malformed.Load(),
		Overflow:  e.nst.overflow.Load(),
		Sent:      e.nst.sent.Load(),
		SendError: e.nst.sendError.Load(),
		Pokes:     e.nst.pokes.Load(),
		Contacts:  e.nst.contacts.Load(),
		Sessions:  e.nst.sessions.Load(),
	}
}
