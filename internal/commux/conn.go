package commux

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"kdsrv/internal/deadline"
)

// Addr is the address of one end of a multiplexed connection:
// "com:<port>#<channel>".
type Addr struct {
	Port    string // the line's name, e.g. /dev/ttyS0
	Channel int    // 0-254
}

// Network returns "com".
func (a Addr) Network() string { return "com" }

// String returns "com:<port>#<channel>".
func (a Addr) String() string { return "com:" + a.Port + "#" + fmt.Sprint(a.Channel) }

// segment is a sent, not yet acknowledged DATA or CLOSE frame.
type segment struct {
	seq     uint16
	payload []byte
	fin     bool
	sentAt  time.Time
	txOrder uint64 // m.txOrder at the latest transmission
	sends   int
	sacked  bool // the peer has it, out of order
	lost    bool // must be sent again
}

// conn is one multiplexed connection. All fields are guarded by m.mu.
type conn struct {
	m       *Mux
	ch      uint8
	gen     uint8
	dialer  bool
	opening bool // dialer waiting for OPEN_ACK

	needOpen    bool // send OPEN
	openAt      time.Time
	openTries   int
	needOpenAck bool // send OPEN_ACK
	ackPending  bool // send an ACK

	// Send side.
	sndQ      [][]byte   // payloads not yet sent
	finQueued bool       // the application closed: send CLOSE after sndQ
	finSent   bool       // CLOSE has a sequence number
	inflight  []*segment // sent, unacknowledged, in sequence order from sndUna
	sndUna    uint16     // oldest unacknowledged sequence number
	sndNxt    uint16     // next sequence number to assign
	peerWnd   int        // frames the peer accepts from sndUna on
	delivered uint64     // highest txOrder known to have reached the peer
	timeouts  int        // consecutive retransmission timeouts without any answer
	backoff   uint       // retransmission timer doubling
	probeAt   time.Time  // zero-window probe time

	// Receive side.
	rcvNxt  uint16            // next in-order sequence number expected
	ooo     map[uint16][]byte // received out of order (nil payload: CLOSE)
	readQ   [][]byte          // in-order data the application has not read
	readOff int               // bytes of readQ[0] already read
	peerFin bool              // the peer's CLOSE was delivered in order
	lastAdv int               // window we last advertised

	localClosed bool  // the application called Close
	err         error // terminal error for Read/Write/Dial (reset, mux failure)

	wake     chan struct{} // closed and replaced on every state change
	rdl, wdl *deadline.Deadline
}

// signal wakes every goroutine blocked on c.
func (c *conn) signal() {
	close(c.wake)
	c.wake = make(chan struct{})
}

func (c *conn) addr() Addr { return Addr{Port: c.m.name, Channel: int(c.ch)} }

func (c *conn) name() string { return c.m.chanName(int(c.ch)) }

// failLocked ends the connection with err; data already received stays
// readable.
func (c *conn) failLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	c.opening = false
	c.sndQ, c.inflight = nil, nil
	c.signal()
}

// avail is the receive window: frames we accept beyond rcvNxt.
func (c *conn) avail() int {
	if c.localClosed {
		return c.m.cfg.Window
	}
	return max(0, c.m.cfg.Window-len(c.readQ))
}

// seqLess reports a < b in 16-bit serial arithmetic.
func seqLess(a, b uint16) bool { return int16(a-b) < 0 }

func (c *conn) handleLocked(f *frame, now time.Time) {
	m := c.m
	switch f.kind {
	case kindReset:
		m.conns[c.ch] = nil
		if c.localClosed {
			c.failLocked(fmt.Errorf("commux: %s: %w", c.name(), net.ErrClosed))
			return
		}
		reason := uint8(rstUnknown)
		if len(f.payload) == 1 {
			reason = f.payload[0]
		}
		c.failLocked(c.resetError(reason))
		return
	case kindOpenAck:
		if !c.dialer {
			return
		}
		if c.opening {
			c.opening = false
			c.peerWnd = int(f.wnd)
			c.signal()
		}
		return
	}
	if c.opening {
		// DATA, ACK or CLOSE before the OPEN_ACK: that was lost, but the
		// listener has the connection.
		c.opening = false
		c.signal()
	}
	c.ackLocked(f, now)
	if f.kind == kindData || f.kind == kindClose {
		c.receiveLocked(f)
	}
	if c.localClosed && c.finSent && len(c.inflight) == 0 && len(c.sndQ) == 0 && m.conns[c.ch] == c {
		// Our CLOSE is acknowledged: nothing left to do for this side.
		m.conns[c.ch] = nil
		c.failLocked(fmt.Errorf("commux: %s: %w", c.name(), net.ErrClosed))
	}
}

func (c *conn) resetError(reason uint8) error {
	switch reason {
	case rstNoListen:
		return fmt.Errorf("commux: %w on %s (start kdsrv with channel=%d there, or dial the channel it listens on)", ErrNoListener, c.name(), c.ch)
	case rstBusy:
		return fmt.Errorf("commux: %s: %w: the server is not accepting connections fast enough; retry later", c.name(), ErrRefused)
	case rstLinkClose:
		return fmt.Errorf("commux: %s: %w (the other side closed the COM link)", c.name(), ErrReset)
	case rstNoConn:
		return fmt.Errorf("commux: %s: %w (the other side does not know this connection; it may have restarted)", c.name(), ErrReset)
	}
	return fmt.Errorf("commux: %s: %w", c.name(), ErrReset)
}

// ackLocked processes the cumulative ack, window and SACK bitmap of f.
func (c *conn) ackLocked(f *frame, now time.Time) {
	m := c.m
	if seqLess(c.sndNxt, f.ack) {
		return // acknowledges something never sent: stale or bogus
	}
	c.timeouts = 0 // the peer is alive
	progress := false
	for len(c.inflight) > 0 && seqLess(c.inflight[0].seq, f.ack) {
		s := c.inflight[0]
		if s.sends == 1 {
			m.rttSampleLocked(now.Sub(s.sentAt))
		}
		c.delivered = max(c.delivered, s.txOrder)
		c.inflight[0] = nil
		c.inflight = c.inflight[1:]
		progress = true
	}
	if progress || f.ack == c.sndUna {
		c.sndUna = f.ack
		c.peerWnd = int(f.wnd)
	}
	if progress {
		c.backoff = 0
		c.probeAt = time.Time{}
		c.signal() // writers may have room now
	}
	if f.kind == kindAck {
		for i, b := range f.payload {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) == 0 {
					continue
				}
				seq := f.ack + 1 + uint16(i*8+bit)
				if s := c.segment(seq); s != nil && !s.sacked {
					s.sacked = true
					c.delivered = max(c.delivered, s.txOrder)
				}
			}
		}
	}
	// A serial line does not reorder: a frame sent before one that
	// arrived, and not itself acknowledged, was lost.
	for _, s := range c.inflight {
		if !s.sacked && !s.lost && s.txOrder < c.delivered {
			s.lost = true
		}
	}
}

func (c *conn) segment(seq uint16) *segment {
	i := int(uint16(seq - c.sndUna))
	if i < len(c.inflight) && c.inflight[i].seq == seq {
		return c.inflight[i]
	}
	return nil
}

// receiveLocked stores a DATA or CLOSE frame and delivers what is in order.
func (c *conn) receiveLocked(f *frame) {
	m := c.m
	c.ackPending = true
	d := int(int16(f.seq - c.rcvNxt))
	if d < 0 || c.peerFin {
		m.stats.Duplicates++
		return
	}
	if d >= c.avail() {
		return // beyond the window (or a zero-window probe): the ACK says so
	}
	if _, dup := c.ooo[f.seq]; dup {
		m.stats.Duplicates++
		return
	}
	if f.kind == kindClose {
		c.ooo[f.seq] = nil
	} else {
		c.ooo[f.seq] = append(make([]byte, 0, len(f.payload)), f.payload...)
	}
	delivered := false
	for {
		p, ok := c.ooo[c.rcvNxt]
		if !ok {
			break
		}
		delete(c.ooo, c.rcvNxt)
		c.rcvNxt++
		delivered = true
		if p == nil {
			c.peerFin = true
			clear(c.ooo)
			break
		}
		if !c.localClosed {
			c.readQ = append(c.readQ, p)
		}
	}
	if delivered {
		c.signal()
	}
}

// sack builds the selective-ack bitmap of frames held out of order.
func (c *conn) sack() []byte {
	if len(c.ooo) == 0 {
		return nil
	}
	var bm [maxSackBytes]byte
	n := 0
	for seq := range c.ooo {
		i := int(uint16(seq-c.rcvNxt)) - 1
		if i < 0 || i >= 8*maxSackBytes {
			continue
		}
		bm[i/8] |= 1 << (i % 8)
		n = max(n, i/8+1)
	}
	return append([]byte(nil), bm[:n]...)
}

// maxBackoff caps the doubling of the retransmission timer at 8x: a noisy
// line that still answers should not stall a connection for tens of
// seconds, and a dead one is detected by maxTimeouts anyway.
const maxBackoff = 3

// timersLocked runs the OPEN and retransmission timers and returns the next
// time they need attention.
func (c *conn) timersLocked(now time.Time) time.Time {
	m := c.m
	rto := min(m.rto<<c.backoff, maxRTO)
	if c.opening {
		if c.needOpen {
			return time.Time{}
		}
		at := c.openAt.Add(rto)
		if now.Before(at) {
			return at
		}
		if c.openTries >= maxTimeouts {
			m.abortLocked(c, rstAborted, fmt.Errorf("commux: dial %s: %w (check the cable, the baud rate, and that kdsrv runs there)", c.name(), ErrNoAnswer))
			return time.Time{}
		}
		c.backoff = min(c.backoff+1, maxBackoff)
		c.needOpen = true
		return time.Time{}
	}
	var oldest time.Time
	for _, s := range c.inflight {
		if !s.sacked && !s.lost && (oldest.IsZero() || s.sentAt.Before(oldest)) {
			oldest = s.sentAt
		}
	}
	if oldest.IsZero() {
		return time.Time{}
	}
	at := oldest.Add(rto)
	if now.Before(at) {
		return at
	}
	c.timeouts++
	if c.timeouts >= maxTimeouts {
		m.abortLocked(c, rstAborted, fmt.Errorf("commux: %s: %w: %d retransmissions unanswered", c.name(), ErrNoAnswer, maxTimeouts))
		return time.Time{}
	}
	c.backoff = min(c.backoff+1, maxBackoff)
	for _, s := range c.inflight {
		if !s.sacked && !now.Before(s.sentAt.Add(rto)) {
			s.lost = true
		}
	}
	return time.Time{}
}

// controlLocked appends the connection's pending OPEN, OPEN_ACK and ACK.
func (c *conn) controlLocked(buf []byte, now time.Time) []byte {
	m := c.m
	if c.needOpen {
		c.needOpen = false
		c.openAt = now
		c.openTries++
		buf = m.emitLocked(buf, &frame{kind: kindOpen, ch: c.ch, gen: c.gen, wnd: uint8(c.avail())}, now)
	}
	if c.needOpenAck {
		c.needOpenAck = false
		buf = m.emitLocked(buf, &frame{kind: kindOpenAck, ch: c.ch, gen: c.gen, wnd: uint8(c.avail()), ack: c.rcvNxt}, now)
	}
	if c.ackPending && !c.opening {
		c.ackPending = false
		c.lastAdv = c.avail()
		buf = m.emitLocked(buf, &frame{kind: kindAck, ch: c.ch, gen: c.gen, wnd: uint8(c.lastAdv), seq: c.sndNxt, ack: c.rcvNxt, payload: c.sack()}, now)
	}
	return buf
}

// nextDataLocked returns the connection's next DATA or CLOSE frame, if the
// windows allow one, and when a zero-window probe is due otherwise.
func (c *conn) nextDataLocked(now time.Time) (frame, bool, time.Time) {
	m := c.m
	if c.opening || c.err != nil {
		return frame{}, false, time.Time{}
	}
	var s *segment
	for _, x := range c.inflight {
		if x.lost && !x.sacked {
			s = x
			m.stats.Retransmits++
			break
		}
	}
	if s == nil {
		if len(c.sndQ) == 0 && (!c.finQueued || c.finSent) {
			return frame{}, false, time.Time{}
		}
		n := int(uint16(c.sndNxt - c.sndUna))
		if n >= m.cfg.Window {
			return frame{}, false, time.Time{}
		}
		if n >= c.peerWnd {
			// The peer's window is full. With nothing in flight no ACK
			// will reopen it, so probe after a retransmission timeout.
			if n > 0 {
				return frame{}, false, time.Time{}
			}
			if c.probeAt.IsZero() {
				c.probeAt = now.Add(m.rto)
			}
			if now.Before(c.probeAt) {
				return frame{}, false, c.probeAt
			}
			c.probeAt = time.Time{}
		}
		s = &segment{seq: c.sndNxt}
		if len(c.sndQ) > 0 {
			s.payload = c.sndQ[0]
			c.sndQ[0] = nil
			c.sndQ = c.sndQ[1:]
			c.signal() // room for writers
		} else {
			s.fin = true
			c.finSent = true
		}
		c.sndNxt++
		c.inflight = append(c.inflight, s)
	}
	s.sends++
	s.lost = false
	s.sentAt = now
	m.txOrder++
	s.txOrder = m.txOrder
	f := frame{kind: kindData, ch: c.ch, gen: c.gen, wnd: uint8(c.avail()), seq: s.seq, ack: c.rcvNxt, payload: s.payload}
	if s.fin {
		f.kind = kindClose
	}
	if len(c.ooo) == 0 {
		c.ackPending = false // the piggybacked ack says it all
		c.lastAdv = int(f.wnd)
	}
	return f, true, time.Time{}
}

// Read reads data the peer sent. It returns io.EOF after the peer closed
// its side and all data was read.
func (c *conn) Read(b []byte) (int, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		switch {
		case c.localClosed:
			return 0, c.opErr("read", net.ErrClosed)
		case c.rdl.Expired():
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case len(c.readQ) > 0:
			n := 0
			for n < len(b) && len(c.readQ) > 0 {
				k := copy(b[n:], c.readQ[0][c.readOff:])
				n += k
				c.readOff += k
				if c.readOff == len(c.readQ[0]) {
					c.readQ[0] = nil
					c.readQ = c.readQ[1:]
					c.readOff = 0
				}
			}
			// Tell the peer when the window opened noticeably.
			if a := c.avail(); m.conns[c.ch] == c && a-c.lastAdv >= max(1, m.cfg.Window/4) {
				c.ackPending = true
				m.kickWriter()
			}
			return n, nil
		case c.peerFin:
			return 0, io.EOF
		case c.err != nil:
			return 0, c.opErr("read", c.err)
		case len(b) == 0:
			return 0, nil
		}
		wake, dl := c.wake, c.rdl.Wait()
		m.mu.Unlock()
		select {
		case <-wake:
		case <-dl:
		}
		m.mu.Lock()
	}
}

// Write queues b for sending. It blocks while the connection's send buffer
// is full, until the write deadline, or until the connection fails.
func (c *conn) Write(b []byte) (int, error) {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for {
		switch {
		case c.localClosed:
			return n, c.opErr("write", net.ErrClosed)
		case c.err != nil:
			return n, c.opErr("write", c.err)
		case c.wdl.Expired():
			return n, c.opErr("write", os.ErrDeadlineExceeded)
		}
		queued := false
		for n < len(b) {
			if k := len(c.sndQ); k > 0 && len(c.sndQ[k-1]) < m.cfg.MaxFrame {
				last := c.sndQ[k-1]
				room := m.cfg.MaxFrame - len(last)
				take := min(room, len(b)-n)
				c.sndQ[k-1] = append(last, b[n:n+take]...)
				n += take
				queued = true
				continue
			}
			if len(c.sndQ) >= m.cfg.Window {
				break
			}
			take := min(m.cfg.MaxFrame, len(b)-n)
			chunk := make([]byte, take, m.cfg.MaxFrame)
			copy(chunk, b[n:n+take])
			c.sndQ = append(c.sndQ, chunk)
			n += take
			queued = true
		}
		if queued {
			m.kickWriter()
		}
		if n == len(b) {
			return n, nil
		}
		wake, dl := c.wake, c.wdl.Wait()
		m.mu.Unlock()
		select {
		case <-wake:
		case <-dl:
		}
		m.mu.Lock()
	}
}

// Close closes the connection: data already written is still delivered,
// followed by a CLOSE, after which the peer reads io.EOF. Pending Read and
// Write calls return net.ErrClosed.
func (c *conn) Close() error {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.localClosed {
		return c.opErr("close", net.ErrClosed)
	}
	c.localClosed = true
	c.readQ, c.readOff = nil, 0
	c.rdl.Stop()
	c.wdl.Stop()
	if c.err == nil && m.conns[c.ch] == c {
		c.finQueued = true
		c.ackPending = true // the window reopens: no more reading
		m.kickWriter()
	}
	c.signal()
	return nil
}

func (c *conn) opErr(op string, err error) error {
	a := c.addr()
	return &net.OpError{Op: op, Net: "com", Source: a, Addr: a, Err: err}
}

// LocalAddr returns com:<port>#<channel>.
func (c *conn) LocalAddr() net.Addr { return c.addr() }

// RemoteAddr returns com:<port>#<channel>: both ends of a channel share it.
func (c *conn) RemoteAddr() net.Addr { return c.addr() }

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for pending and future reads.
func (c *conn) SetReadDeadline(t time.Time) error { c.rdl.Set(t); return nil }

// SetWriteDeadline sets the deadline for pending and future writes.
func (c *conn) SetWriteDeadline(t time.Time) error { c.wdl.Set(t); return nil }
