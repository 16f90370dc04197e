package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is an established protocol connection, returned by Client or Server.
//
// Send, SendKD, SendError and Close are safe for concurrent use. Recv must
// be called from one goroutine at a time. A Conn owns one background
// goroutine (keep-alive Pings and Pong answers) that Close, or any fatal
// error seen by Recv, stops.
type Conn struct {
	nc            net.Conn
	dec           *Decoder
	server        bool
	version       int
	peerSoftware  string
	authenticated bool
	addr          string

	keepAlive    time.Duration // <= 0: disabled
	deadAfter    time.Duration // 0: no dead-peer check
	writeTimeout time.Duration

	wsem chan struct{} // one-slot semaphore guarding wbuf, werr and writes
	wbuf []byte
	werr error

	lastSend atomic.Int64 // UnixNano of the last successful write
	failure  atomic.Pointer[error]

	// Pong owed to the peer: Recv records it, the background goroutine
	// writes it, so that Recv never blocks on a write (two peers whose
	// readers both wait to write would deadlock on an unbuffered stream).
	pongMu   sync.Mutex
	pongData [PingSize]byte
	pongSig  chan struct{}

	closing   chan struct{} // closed when the Conn starts shutting down
	closeOnce sync.Once
	wg        sync.WaitGroup

	// Owned by the Recv goroutine.
	rerr    error
	byeCode Code
}

func newConn(h *handshake, server bool, version int, peerSoftware string) *Conn {
	c := &Conn{
		nc:           h.nc,
		dec:          h.dec,
		server:       server,
		version:      version,
		peerSoftware: peerSoftware,
		addr:         h.addr,
		keepAlive:    h.cfg.KeepAlive,
		wsem:         make(chan struct{}, 1),
		pongSig:      make(chan struct{}, 1),
		closing:      make(chan struct{}),
	}
	if c.keepAlive > 0 {
		c.deadAfter = deadIntervals * c.keepAlive
		c.writeTimeout = c.deadAfter
	} else {
		c.writeTimeout = deadIntervals * DefaultKeepAlive
	}
	return c
}

// start launches the background goroutine (pings and pongs).
func (c *Conn) start() {
	c.lastSend.Store(time.Now().UnixNano())
	c.wg.Add(1)
	go c.background()
}

// Version returns the negotiated protocol version.
func (c *Conn) Version() int { return c.version }

// PeerSoftware returns the software string the peer sent in its Hello or
// HelloReply (sanitised for display).
func (c *Conn) PeerSoftware() string { return c.peerSoftware }

// NetConn returns the underlying connection. Do not read from it: the Conn
// buffers incoming bytes.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Authenticated reports whether the mutual password proof was exchanged. A
// client that has a password gets false when the server requires none: the
// caller should warn that the password was not used.
func (c *Conn) Authenticated() bool { return c.authenticated }

// ByeReason returns the reason code of the peer's Bye after Recv returned
// io.EOF (OK for a normal close, e.g. ServerShutdown).
func (c *Conn) ByeReason() Code { return c.byeCode }

// sendDir is the direction of frames this side sends.
func (c *Conn) sendDir() direction {
	if c.server {
		return dirS2C
	}
	return dirC2S
}

// recvDir is the direction of frames this side receives.
func (c *Conn) recvDir() direction {
	if c.server {
		return dirC2S
	}
	return dirS2C
}

func (c *Conn) role() string {
	if c.server {
		return "server"
	}
	return "client"
}

// Send sends one frame. It refuses handshake frames, frames of the wrong
// direction for this side, Error and Bye (use SendError and Close), and
// payloads over MaxPayload. Each write has a deadline of three keep-alive
// intervals (45s by default); after a failed write the Conn is broken and
// every later Send returns the same error.
func (c *Conn) Send(t Type, payload []byte) error {
	ti, ok := typeInfo[t]
	switch {
	case !ok:
		return fmt.Errorf("wire: Send: unknown frame type %s", t)
	case ti.handshake || t == TypeError || t == TypeBye:
		return fmt.Errorf("wire: Send: %s frames are sent by Client/Server, SendError or Close", t)
	case ti.dir&c.sendDir() == 0:
		return fmt.Errorf("wire: Send: a %s may not send %s frames", c.role(), t)
	case len(payload) > MaxPayload:
		return fmt.Errorf("wire: Send: %s payload of %d bytes exceeds the %d-byte limit", t, len(payload), MaxPayload)
	}
	return c.writeFrame(t, nil, payload, c.closing, nil)
}

// SendKD sends a KD frame carrying one KD data packet without building the
// payload separately (no allocation in steady state).
func (c *Conn) SendKD(pktType uint16, payload []byte) error {
	if len(payload) > MaxKDPayload {
		return fmt.Errorf("wire: SendKD: KD payload of %d bytes exceeds the %d-byte limit", len(payload), MaxKDPayload)
	}
	var pre [2]byte
	binary.BigEndian.PutUint16(pre[:], pktType)
	return c.writeFrame(TypeKD, pre[:], payload, c.closing, nil)
}

// writeFrame writes one frame (prefix and payload form the frame payload).
// It waits for the write lock until cancel is closed or timeout fires.
func (c *Conn) writeFrame(t Type, prefix, payload []byte, cancel <-chan struct{}, timeout <-chan time.Time) error {
	select {
	case c.wsem <- struct{}{}:
	case <-cancel:
		return fmt.Errorf("wire: sending %s frame: %w", t, net.ErrClosed)
	case <-timeout:
		return fmt.Errorf("wire: sending %s frame: write lock busy: %w", t, os.ErrDeadlineExceeded)
	}
	defer func() { <-c.wsem }()
	if cancel != nil {
		select {
		case <-cancel:
			return fmt.Errorf("wire: sending %s frame: %w", t, net.ErrClosed)
		default:
		}
	}
	if c.werr != nil {
		return c.werr
	}
	n := len(prefix) + len(payload)
	b := append(c.wbuf[:0], Magic, byte(t), 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, prefix...)
	b = append(b, payload...)
	c.wbuf = b
	wt := c.writeTimeout
	if t == TypeError || t == TypeBye {
		wt = errorWriteTimeout
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(wt)); err != nil {
		c.werr = fmt.Errorf("wire: sending %s frame to %s: %w", t, c.addr, err)
		return c.werr
	}
	if _, err := c.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the %s did not read for %v: %w", c.peerRole(), wt, err)
		}
		c.werr = fmt.Errorf("wire: sending %s frame to %s: %w", t, c.addr, err)
		return c.werr
	}
	c.lastSend.Store(time.Now().UnixNano())
	return nil
}

func (c *Conn) peerRole() string {
	if c.server {
		return "client"
	}
	return "server"
}

// SendError sends an Error frame and closes the connection: errors are
// fatal in this protocol (non-fatal outcomes travel in Control replies). The
// message is for the peer's user; it must not contain secrets.
func (c *Conn) SendError(code Code, msg string) error {
	return c.shutdown(TypeError, EncodeError(code, msg))
}

// Close sends Bye (best effort, one-second deadline), closes the connection
// and stops the background goroutine. It is idempotent; a Recv in progress
// returns an error wrapping net.ErrClosed.
func (c *Conn) Close() error { return c.shutdown(TypeBye, nil) }

// CloseWithReason is Close with a reason code in the Bye frame, e.g.
// ServerShutdown.
func (c *Conn) CloseWithReason(reason Code) error {
	return c.shutdown(TypeBye, EncodeBye(reason))
}

// shutdown sends a final frame (if t is not 0), closes the connection and
// waits for the background goroutine. Only the first call does anything.
func (c *Conn) shutdown(t Type, payload []byte) error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closing)
		if t != 0 {
			timer := time.NewTimer(errorWriteTimeout)
			werr := c.writeFrame(t, nil, payload, nil, timer.C)
			timer.Stop()
			if t == TypeError {
				// A lost Bye is not the caller's problem (the peer sees
				// EOF); a lost Error is worth reporting.
				err = werr
			}
		}
		if cerr := c.nc.Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("wire: closing connection to %s: %w", c.addr, cerr)
		}
		c.wg.Wait()
	})
	return err
}

// fail records the first fatal error seen outside Recv and closes the
// connection so that Recv wakes up and reports it.
func (c *Conn) fail(err error) {
	c.failure.CompareAndSwap(nil, &err)
	_ = c.nc.Close()
}

// background sends keep-alive Pings when the connection is idle and the
// Pongs that Recv owes the peer. It stops when the Conn shuts down.
func (c *Conn) background() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if c.keepAlive > 0 {
		t := time.NewTicker(c.keepAlive)
		defer t.Stop()
		tick = t.C
	}
	var seq uint64
	var p [PingSize]byte
	for {
		var t Type
		select {
		case <-c.closing:
			return
		case <-c.pongSig:
			c.pongMu.Lock()
			p = c.pongData
			c.pongMu.Unlock()
			t = TypePong
		case <-tick:
			idle := time.Since(time.Unix(0, c.lastSend.Load()))
			if idle < c.keepAlive/2 {
				continue
			}
			seq++
			binary.BigEndian.PutUint64(p[:], seq)
			t = TypePing
		}
		if err := c.writeFrame(t, nil, p[:], c.closing, nil); err != nil {
			select {
			case <-c.closing:
			default:
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = fmt.Errorf("%w: %w", ErrPeerDead, err)
				}
				c.fail(fmt.Errorf("sending %s: %w", t, err))
			}
			return
		}
	}
}

// Recv returns the next frame for the application. The Payload is valid
// until the next Recv. Recv answers Ping frames, drops Pong frames and
// skips unknown frames flagged FlagIgnorable.
//
// Errors end the connection (Recv closes it, stops the background goroutine
// and returns the same error from then on):
//   - io.EOF after the peer's Bye (see ByeReason);
//   - *RemoteError after the peer's Error frame;
//   - an error wrapping ErrPeerDead (and os.ErrDeadlineExceeded) when
//     nothing arrived for three keep-alive intervals;
//   - *ProtocolError (BadFrame, FrameTooLarge) when the peer broke the
//     protocol: Recv first sends the matching Error frame;
//   - io.ErrUnexpectedEOF when the peer vanished without Bye;
//   - an error wrapping net.ErrClosed after Close.
func (c *Conn) Recv() (Frame, error) {
	if c.rerr != nil {
		return Frame{}, c.rerr
	}
	for {
		f, deliver, err := c.recvOne()
		if err != nil {
			c.rerr = err
			return Frame{}, err
		}
		if deliver {
			return f, nil
		}
	}
}

// recvOne reads one frame; deliver is false for frames handled internally.
func (c *Conn) recvOne() (f Frame, deliver bool, err error) {
	var dl time.Time
	if c.deadAfter > 0 {
		dl = time.Now().Add(c.deadAfter)
	}
	if err := c.nc.SetReadDeadline(dl); err != nil {
		return Frame{}, false, c.readFailed(err)
	}
	f, err = c.dec.Next()
	if err != nil {
		return Frame{}, false, c.readFailed(err)
	}
	switch f.Type {
	case TypePing:
		if len(f.Payload) != PingSize {
			return Frame{}, false, c.violation(protoErr(BadFrame, "Ping payload is %d bytes, want %d", len(f.Payload), PingSize))
		}
		// Only the latest Ping is answered if several arrive before the
		// background goroutine gets to write.
		c.pongMu.Lock()
		copy(c.pongData[:], f.Payload)
		c.pongMu.Unlock()
		select {
		case c.pongSig <- struct{}{}:
		default:
		}
		return Frame{}, false, nil
	case TypePong:
		if len(f.Payload) != PingSize {
			return Frame{}, false, c.violation(protoErr(BadFrame, "Pong payload is %d bytes, want %d", len(f.Payload), PingSize))
		}
		return Frame{}, false, nil
	case TypeBye:
		code, err := DecodeBye(f.Payload)
		if err != nil {
			return Frame{}, false, c.violation(err.(*ProtocolError))
		}
		c.byeCode = code
		_ = c.shutdown(0, nil)
		return Frame{}, false, io.EOF
	case TypeError:
		re, err := DecodeError(f.Payload)
		if err != nil {
			return Frame{}, false, c.violation(err.(*ProtocolError))
		}
		_ = c.shutdown(0, nil)
		return Frame{}, false, re
	}
	ti, known := typeInfo[f.Type]
	switch {
	case !known && f.Flags&FlagIgnorable != 0:
		return Frame{}, false, nil
	case !known:
		return Frame{}, false, c.violation(protoErr(BadFrame, "unknown frame type 0x%02x", uint8(f.Type)))
	case ti.handshake:
		return Frame{}, false, c.violation(protoErr(BadFrame, "%s frame after the handshake", f.Type))
	case ti.dir&c.recvDir() == 0:
		return Frame{}, false, c.violation(protoErr(BadFrame, "a %s may not send %s frames", c.peerRole(), f.Type))
	}
	switch f.Type {
	case TypeBreakIn, TypeReset, TypeDetach, TypeDetached:
		if len(f.Payload) != 0 {
			return Frame{}, false, c.violation(protoErr(BadFrame, "%s frame has a %d-byte payload, want none", f.Type, len(f.Payload)))
		}
	case TypeKD:
		if len(f.Payload) < 2 {
			return Frame{}, false, c.violation(protoErr(BadFrame, "KD payload is %d bytes, want at least 2", len(f.Payload)))
		}
	case TypeNotice:
		if len(f.Payload) < 2 {
			return Frame{}, false, c.violation(protoErr(BadFrame, "Notice payload is %d bytes, want at least 2", len(f.Payload)))
		}
	}
	return f, true, nil
}

// violation reports a protocol violation to the peer and ends the Conn.
func (c *Conn) violation(pe *ProtocolError) error {
	_ = c.shutdown(TypeError, EncodeError(pe.Code, pe.Msg))
	return fmt.Errorf("wire: frame from %s %s: %w", c.peerRole(), c.addr, pe)
}

// readFailed turns a read error into the error Recv reports.
func (c *Conn) readFailed(err error) error {
	if fp := c.failure.Load(); fp != nil {
		_ = c.shutdown(0, nil)
		return fmt.Errorf("wire: connection to %s %s failed: %w", c.peerRole(), c.addr, *fp)
	}
	select {
	case <-c.closing:
		return fmt.Errorf("wire: Recv: %w", net.ErrClosed)
	default:
	}
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return c.violation(pe)
	case errors.Is(err, os.ErrDeadlineExceeded):
		_ = c.shutdown(0, nil)
		return fmt.Errorf("wire: no frame from %s %s for %v, the peer or the network is down: %w (%w)", c.peerRole(), c.addr, c.deadAfter, ErrPeerDead, os.ErrDeadlineExceeded)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		_ = c.shutdown(0, nil)
		return fmt.Errorf("wire: %s %s closed the connection without Bye: %w", c.peerRole(), c.addr, io.ErrUnexpectedEOF)
	}
	_ = c.shutdown(0, nil)
	return fmt.Errorf("wire: reading from %s %s: %w", c.peerRole(), c.addr, err)
}
