// Package commux multiplexes independent, reliable byte-stream connections
// over one serial line (or any byte stream), for kdsrv's COM transport:
// `-t com:port=...,baud=...,channel=N`, with channels 0-254.
//
// The line protocol is documented in docs/commux.md. In short: frames with
// two sync bytes, a CRC-32C-checked header and a CRC-32C-checked payload; a
// per-channel sliding window with cumulative and selective acknowledgements
// and retransmission; per-channel receive windows for flow control; and a
// single writer that serves channels round-robin so one busy channel cannot
// starve another.
//
// One side calls Listen(ch) and gets a net.Listener, the other Dial(ctx, ch)
// and gets a net.Conn. A Mux owns its byte stream and two goroutines; Close
// stops them and closes the stream.
package commux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"kdsrv/internal/deadline"
)

// Errors reported by the multiplexer. They are wrapped with the channel and
// the port name; test them with errors.Is.
var (
	// ErrNoListener: the peer has no listener on the dialled channel.
	ErrNoListener = errors.New("no kdsrv listening")
	// ErrRefused: the peer's listener did not take the connection (its
	// accept queue is full).
	ErrRefused = errors.New("connection refused")
	// ErrReset: the peer aborted the connection.
	ErrReset = errors.New("connection reset by peer")
	// ErrNoAnswer: the peer stopped answering (cable pulled, wrong baud
	// rate, peer process gone).
	ErrNoAnswer = errors.New("no answer from the other end of the COM line")
	// ErrChannel: a channel number outside 0-254.
	ErrChannel = errors.New("COM channel out of range")
	// ErrInUse: the channel already has a listener or a live connection.
	ErrInUse = errors.New("COM channel in use")
	// ErrMuxClosed: the multiplexer was closed or its line failed.
	ErrMuxClosed = errors.New("COM link closed")
)

// Config tunes a Mux. The zero value selects the defaults.
type Config struct {
	// RetransmitTimeout is the initial and minimum retransmission timeout;
	// the timeout adapts to the measured round-trip time above it.
	// Default 500ms.
	RetransmitTimeout time.Duration
	// Window is the number of frames per channel that may be unacknowledged
	// in each direction, and the receive buffer of a channel in frames.
	// Range 1-255, default 16.
	Window int
	// MaxFrame is the largest payload this side puts in one frame, 1-1024,
	// default 1024. Smaller frames lower latency for other channels on slow
	// lines and lose less to line noise.
	MaxFrame int
	// KeepAlive is how often an idle line carries a PING. If nothing at all
	// arrives for four intervals, established connections fail with
	// ErrNoAnswer. Default 5s; negative disables keep-alives.
	KeepAlive time.Duration
	// Name names the line in addresses and errors, e.g. "/dev/ttyS0". If
	// empty, the Name() of the byte stream is used when it has one.
	Name string
}

// DefaultConfig returns the configuration used for zero fields.
//
// Frames default to 256 payload bytes: on a noisy line the chance that a
// frame is hit grows with its length (at one bad byte in 1000, a 1 KiB frame
// is lost two times in three, a 256-byte one one time in four), and the
// header overhead stays under 10%. The retransmission time-out is a floor:
// the measured round trip (which includes the line's transmission time at
// its baud rate) raises it as needed.
func DefaultConfig() Config {
	return Config{RetransmitTimeout: 100 * time.Millisecond, Window: 16, MaxFrame: 256, KeepAlive: 5 * time.Second}
}

// normalize fills zero fields with defaults and clamps the others to their
// allowed ranges.
func (c Config) normalize() Config {
	d := DefaultConfig()
	if c.RetransmitTimeout <= 0 {
		c.RetransmitTimeout = d.RetransmitTimeout
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	c.Window = min(c.Window, 255)
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	c.MaxFrame = min(c.MaxFrame, MaxPayload)
	if c.KeepAlive == 0 {
		c.KeepAlive = d.KeepAlive
	}
	return c
}

// Stats counts what happened on the line since the Mux was created.
type Stats struct {
	FramesSent     uint64 // frames written, retransmissions included
	FramesReceived uint64 // well-formed frames received
	BytesSent      uint64 // bytes written to the line
	BytesReceived  uint64 // bytes read from the line
	CRCErrors      uint64 // header or payload checksum mismatches
	BadHeaders     uint64 // frames with a good checksum but impossible fields
	Resyncs        uint64 // times the receiver skipped bytes to find the next frame
	SkippedBytes   uint64 // bytes skipped while resynchronising
	Retransmits    uint64 // DATA/CLOSE frames sent again
	Duplicates     uint64 // DATA/CLOSE frames received more than once
	ResetsSent     uint64 // RESET frames sent
	ResetsReceived uint64 // RESET frames received
}

const (
	maxRTO        = 30 * time.Second
	maxTimeouts   = 10 // consecutive timeouts without any answer before a connection fails
	acceptBacklog = 16 // OPENs a listener queues before Accept
	closeFlush    = 250 * time.Millisecond
	readBufSize   = 16 << 10 // bytes per read from the line
)

// Mux multiplexes connections over one byte stream. Create it with New.
type Mux struct {
	rw   io.ReadWriteCloser
	cfg  Config
	name string

	kick    chan struct{} // wakes the writer (capacity 1)
	stop    chan struct{} // closed by Close: the writer exits
	dead    chan struct{} // closed when the line failed or Close began
	flushed chan struct{} // closed by the writer once the closing RESET is written
	wg      sync.WaitGroup

	closeOnce sync.Once

	mu        sync.Mutex
	err       error // why the mux stopped; nil while running
	closing   bool
	conns     [LinkChannel]*conn
	listeners [LinkChannel]*listener
	gens      [LinkChannel]uint8 // generation of the last OPEN sent or received per channel
	lastOpen  [LinkChannel]int16 // generation of the last OPEN received, -1 if none
	ctrl      []frame            // frames not tied to a live connection
	rr        int                // round-robin position of the data writer
	txOrder   uint64             // transmission counter (for loss detection)
	srtt      time.Duration      // smoothed round-trip time, 0 before the first sample
	rttvar    time.Duration
	rto       time.Duration
	lastSend  time.Time
	lastRecv  time.Time
	stats     Stats
	flushDone bool
}

// New starts a multiplexer on rw, which it owns from now on: Close closes
// it. rw is typically a *serial.Port; any reliable-or-not byte stream works.
func New(rw io.ReadWriteCloser, cfg Config) *Mux {
	cfg = cfg.normalize()
	name := cfg.Name
	if name == "" {
		if n, ok := rw.(interface{ Name() string }); ok {
			name = n.Name()
		} else {
			name = "the COM line"
		}
	}
	now := time.Now()
	m := &Mux{
		rw:       rw,
		cfg:      cfg,
		name:     name,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		dead:     make(chan struct{}),
		flushed:  make(chan struct{}),
		rto:      cfg.RetransmitTimeout,
		lastSend: now,
		lastRecv: now,
	}
	for i := range m.gens {
		m.gens[i] = uint8(rand.Uint32())
		m.lastOpen[i] = -1
	}
	// Announce a fresh start: the peer drops any connection state left
	// from an earlier incarnation of this side.
	m.ctrl = append(m.ctrl, frame{kind: kindReset, ch: LinkChannel})
	m.wg.Add(2)
	go m.readLoop()
	go m.writeLoop()
	m.kickWriter()
	return m
}

// Name returns the name of the line, as used in addresses and errors.
func (m *Mux) Name() string { return m.name }

// Stats returns a snapshot of the counters.
func (m *Mux) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Done returns a channel that is closed when the mux stops, because Close
// was called or the line failed.
func (m *Mux) Done() <-chan struct{} { return m.dead }

// Err returns why the mux stopped, or nil while it runs.
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close resets all connections (telling the peer, best effort), closes all
// listeners and the byte stream, and waits for the mux goroutines to exit.
// A second Close returns ErrMuxClosed.
func (m *Mux) Close() error {
	err := ErrMuxClosed
	m.closeOnce.Do(func() {
		err = nil
		m.mu.Lock()
		m.closing = true
		alive := m.err == nil
		m.failLocked(fmt.Errorf("%w: %s closed by this side", ErrMuxClosed, m.name))
		if alive {
			m.ctrl = append(m.ctrl[:0], frame{kind: kindReset, ch: LinkChannel, payload: []byte{rstLinkClose}})
		}
		m.mu.Unlock()
		if alive {
			m.kickWriter()
			t := time.NewTimer(closeFlush)
			select {
			case <-m.flushed:
			case <-t.C:
			}
			t.Stop()
		}
		close(m.stop)
		cerr := m.rw.Close()
		m.wg.Wait()
		if cerr != nil && !errors.Is(cerr, net.ErrClosed) && !errors.Is(cerr, io.ErrClosedPipe) {
			err = fmt.Errorf("commux: closing %s: %w", m.name, cerr)
		}
	})
	return err
}

// fail stops the mux because of err: every connection and listener fails.
func (m *Mux) fail(err error) {
	m.mu.Lock()
	m.failLocked(err)
	m.mu.Unlock()
}

func (m *Mux) failLocked(err error) {
	if m.err != nil {
		return
	}
	m.err = err
	close(m.dead)
	for ch, c := range m.conns {
		if c != nil {
			c.failLocked(err)
			m.conns[ch] = nil
		}
	}
	for ch, l := range m.listeners {
		if l != nil {
			l.closeLocked()
			m.listeners[ch] = nil
		}
	}
}

func (m *Mux) kickWriter() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Mux) chanName(ch int) string {
	return "COM channel " + strconv.Itoa(ch) + " of " + m.name
}

func checkChannel(ch int) error {
	if ch < 0 || ch > MaxChannel {
		return fmt.Errorf("commux: %w: %d (use 0-%d; %d is reserved for link control)", ErrChannel, ch, MaxChannel, LinkChannel)
	}
	return nil
}

// Listen accepts connections that the peer opens on channel ch.
func (m *Mux) Listen(ch int) (net.Listener, error) {
	if err := checkChannel(ch); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, fmt.Errorf("commux: listen on %s: %w", m.chanName(ch), m.err)
	}
	if m.listeners[ch] != nil {
		return nil, fmt.Errorf("commux: listen on %s: %w: another transport in this process already listens there; pick another channel", m.chanName(ch), ErrInUse)
	}
	l := &listener{m: m, ch: uint8(ch), wake: make(chan struct{})}
	m.listeners[ch] = l
	return l, nil
}

// Dial opens a connection on channel ch to the peer's listener. It fails
// with an error wrapping ErrNoListener if nobody listens there, and gives
// up when ctx ends or the peer does not answer.
func (m *Mux) Dial(ctx context.Context, ch int) (net.Conn, error) {
	if err := checkChannel(ch); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("commux: dial %s: %w", m.chanName(ch), m.err)
	}
	if old := m.conns[ch]; old != nil {
		if !old.localClosed {
			m.mu.Unlock()
			return nil, fmt.Errorf("commux: dial %s: %w: a connection on it is still open in this process", m.chanName(ch), ErrInUse)
		}
		// The application closed the old connection but its close
		// handshake is not over: abandon it, the new one replaces it.
		m.abortLocked(old, rstAborted, nil)
	}
	m.gens[ch]++
	c := m.newConnLocked(uint8(ch), m.gens[ch], true)
	c.needOpen = true
	m.conns[ch] = c
	m.mu.Unlock()
	m.kickWriter()

	m.mu.Lock()
	defer m.mu.Unlock()
	for c.opening && c.err == nil {
		wake := c.wake
		m.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		m.mu.Lock()
		if ctx.Err() != nil && c.opening && c.err == nil {
			if m.conns[ch] == c {
				m.abortLocked(c, rstAborted, nil)
			}
			return nil, fmt.Errorf("commux: dial %s: %w", m.chanName(ch), ctx.Err())
		}
	}
	if c.err != nil {
		if m.conns[ch] == c {
			m.conns[ch] = nil
		}
		return nil, c.err
	}
	return c, nil
}

// newConnLocked creates the state of a connection; it is not registered.
func (m *Mux) newConnLocked(ch, gen uint8, dialer bool) *conn {
	return &conn{
		m:       m,
		ch:      ch,
		gen:     gen,
		dialer:  dialer,
		opening: dialer,
		peerWnd: 1, // until the peer tells its window
		ooo:     make(map[uint16][]byte),
		wake:    make(chan struct{}),
		rdl:     deadline.New(),
		wdl:     deadline.New(),
		lastAdv: m.cfg.Window,
	}
}

// abortLocked removes c, tells the peer with a RESET carrying reason and
// fails c's pending operations with err (nil: the connection is just gone).
func (m *Mux) abortLocked(c *conn, reason uint8, err error) {
	if m.conns[c.ch] == c {
		m.conns[c.ch] = nil
	}
	m.queueResetLocked(c.ch, c.gen, reason)
	if err == nil {
		err = fmt.Errorf("commux: %s: %w", m.chanName(int(c.ch)), net.ErrClosed)
	}
	c.failLocked(err)
}

func (m *Mux) queueResetLocked(ch, gen, reason uint8) {
	m.ctrl = append(m.ctrl, frame{kind: kindReset, ch: ch, gen: gen, payload: []byte{reason}})
}

// readLoop decodes frames from the line and dispatches them.
func (m *Mux) readLoop() {
	defer m.wg.Done()
	var dec decoder
	buf := make([]byte, readBufSize)
	for {
		n, err := m.rw.Read(buf)
		if n > 0 {
			dec.feed(buf[:n])
			now := time.Now()
			m.mu.Lock()
			m.stats.BytesReceived += uint64(n)
			for {
				f, ok := dec.next()
				if !ok {
					break
				}
				m.stats.FramesReceived++
				m.lastRecv = now
				m.handleLocked(&f, now)
			}
			m.stats.CRCErrors = dec.crcErrors
			m.stats.BadHeaders = dec.badHeaders
			m.stats.Resyncs = dec.resyncs
			m.stats.SkippedBytes = dec.skipped
			m.mu.Unlock()
			m.kickWriter()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %s: the other end closed the line", ErrMuxClosed, m.name)
			} else {
				err = fmt.Errorf("%w: reading %s: %w", ErrMuxClosed, m.name, err)
			}
			m.fail(err)
			return
		}
	}
}

// handleLocked acts on one received frame.
func (m *Mux) handleLocked(f *frame, now time.Time) {
	if f.ch == LinkChannel {
		switch f.kind {
		case kindPing:
			m.ctrl = append(m.ctrl, frame{kind: kindPong, ch: LinkChannel, payload: append([]byte(nil), f.payload...)})
		case kindReset:
			m.stats.ResetsReceived++
			for i := range m.lastOpen {
				m.lastOpen[i] = -1
			}
			closing := len(f.payload) == 1 && f.payload[0] == rstLinkClose
			for _, c := range m.conns {
				switch {
				case c == nil:
				case c.opening && !closing:
					// The peer (re)started after our OPEN: send it again.
					c.needOpen = true
				case closing:
					m.conns[c.ch] = nil
					c.failLocked(fmt.Errorf("commux: %s: %w (the other side closed the COM link)", m.chanName(int(c.ch)), ErrReset))
				default:
					m.conns[c.ch] = nil
					c.failLocked(fmt.Errorf("commux: %s: %w (the other side restarted)", m.chanName(int(c.ch)), ErrReset))
				}
			}
		}
		return
	}
	if f.kind == kindReset {
		m.stats.ResetsReceived++
	}
	c := m.conns[f.ch]
	if f.kind == kindOpen {
		m.handleOpenLocked(f, c)
		return
	}
	if c == nil || c.gen != f.gen {
		// Not a connection we have (any more). Tell the sender, unless
		// the frame is itself an ACK or RESET (no RESET storms).
		if f.kind == kindData || f.kind == kindClose || f.kind == kindOpenAck {
			m.queueResetLocked(f.ch, f.gen, rstNoConn)
		}
		return
	}
	c.handleLocked(f, now)
}

func (m *Mux) handleOpenLocked(f *frame, c *conn) {
	if c != nil && c.gen == f.gen && !c.dialer {
		c.needOpenAck = true // our OPEN_ACK was lost: send it again
		return
	}
	if c == nil && m.lastOpen[f.ch] == int16(f.gen) && m.listeners[f.ch] != nil {
		return // a late copy of the OPEN of a connection that is over
	}
	m.lastOpen[f.ch] = int16(f.gen)
	m.gens[f.ch] = f.gen // our next Dial on ch uses a generation the peer has not seen last
	if c != nil {
		// The peer opened a new connection, so it has forgotten c.
		m.conns[f.ch] = nil
		c.failLocked(fmt.Errorf("commux: %s: %w (the other side opened a new connection on this channel)", m.chanName(int(c.ch)), ErrReset))
	}
	l := m.listeners[f.ch]
	if l == nil {
		m.queueResetLocked(f.ch, f.gen, rstNoListen)
		return
	}
	if len(l.backlog) >= acceptBacklog {
		m.queueResetLocked(f.ch, f.gen, rstBusy)
		return
	}
	nc := m.newConnLocked(f.ch, f.gen, false)
	nc.peerWnd = int(f.wnd)
	nc.needOpenAck = true
	m.conns[f.ch] = nc
	l.backlog = append(l.backlog, nc)
	l.signal()
}

// writeLoop sends frames: control first, then data round-robin, and runs
// the retransmission and keep-alive timers.
func (m *Mux) writeLoop() {
	defer m.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []byte
	for {
		m.mu.Lock()
		if m.err != nil && !m.closing {
			m.mu.Unlock()
			return
		}
		now := time.Now()
		var next time.Time
		buf, next = m.buildLocked(buf[:0], now)
		flush := m.closing && len(buf) == 0 && !m.flushDone
		if flush {
			m.flushDone = true
		}
		m.mu.Unlock()
		if flush {
			close(m.flushed)
		}
		if len(buf) > 0 {
			if _, err := m.rw.Write(buf); err != nil {
				m.fail(fmt.Errorf("%w: writing %s: %w", ErrMuxClosed, m.name, err))
				return
			}
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-m.kick:
		case <-timer.C:
		case <-m.stop:
			return
		}
	}
}

// batchLimit bounds one write so control frames of other channels are not
// held back for long on slow lines.
func (m *Mux) batchLimit() int { return 2 * encodedLen(m.cfg.MaxFrame) }

// emitLocked appends f to buf and counts it.
func (m *Mux) emitLocked(buf []byte, f *frame, now time.Time) []byte {
	n := len(buf)
	buf = appendFrame(buf, f)
	m.stats.FramesSent++
	m.stats.BytesSent += uint64(len(buf) - n)
	if f.kind == kindReset {
		m.stats.ResetsSent++
	}
	m.lastSend = now
	return buf
}

// buildLocked fills buf with the frames to send now and returns when the
// writer must look again if nothing else wakes it.
func (m *Mux) buildLocked(buf []byte, now time.Time) ([]byte, time.Time) {
	var next time.Time
	soon := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for i := range m.ctrl {
		buf = m.emitLocked(buf, &m.ctrl[i], now)
	}
	clear(m.ctrl)
	m.ctrl = m.ctrl[:0]
	if m.closing || m.err != nil {
		return buf, next
	}

	// Timers and per-connection control frames.
	established := false
	for _, c := range m.conns {
		if c == nil {
			continue
		}
		if !c.opening {
			established = true
		}
		soon(c.timersLocked(now))
		if m.conns[c.ch] != c {
			continue // the timers gave up on it
		}
		buf = c.controlLocked(buf, now)
	}
	if ka := m.cfg.KeepAlive; ka > 0 {
		if established && now.Sub(m.lastRecv) >= 4*ka {
			err := fmt.Errorf("commux: %w: nothing received on %s for %v", ErrNoAnswer, m.name, now.Sub(m.lastRecv).Round(time.Millisecond))
			for _, c := range m.conns {
				if c != nil && !c.opening {
					m.abortLocked(c, rstAborted, err)
				}
			}
		}
		if now.Sub(m.lastSend) >= ka {
			buf = m.emitLocked(buf, &frame{kind: kindPing, ch: LinkChannel}, now)
		}
		soon(m.lastSend.Add(ka))
		if established {
			soon(m.lastRecv.Add(4 * ka))
		}
	}

	// Data, one frame per channel per round.
	limit := m.batchLimit()
	for len(buf) < limit {
		sent := false
		start := m.rr
		for i := 0; i < LinkChannel && len(buf) < limit; i++ {
			ch := (start + i) % LinkChannel
			c := m.conns[ch]
			if c == nil {
				continue
			}
			f, ok, probeAt := c.nextDataLocked(now)
			soon(probeAt)
			if !ok {
				continue
			}
			buf = m.emitLocked(buf, &f, now)
			sent = true
			m.rr = (ch + 1) % LinkChannel
		}
		if !sent {
			break
		}
	}
	return buf, next
}

// rttSampleLocked updates the round-trip estimate (RFC 6298 style).
func (m *Mux) rttSampleLocked(r time.Duration) {
	if m.srtt == 0 {
		m.srtt, m.rttvar = r, r/2
	} else {
		d := m.srtt - r
		if d < 0 {
			d = -d
		}
		m.rttvar = (3*m.rttvar + d) / 4
		m.srtt = (7*m.srtt + r) / 8
	}
	m.rto = min(max(m.srtt+4*m.rttvar, m.cfg.RetransmitTimeout), maxRTO)
}
