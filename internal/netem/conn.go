package netem

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"kdsrv/internal/deadline"
)

// lingerGrace bounds how long a wrapped conn keeps delivering pending data
// to the underlying conn after Close, beyond the scheduled arrival of the
// last segment.
const lingerGrace = 5 * time.Second

var (
	errLocalClosed = net.ErrClosed
	errDeadline    = os.ErrDeadlineExceeded
)

// ConnStats is what a Conn has sent and received through the emulator.
type ConnStats struct {
	Sent     Stats // written on this side, toward the peer
	Received Stats // written by the peer, toward this side
}

// Conn is one end of an emulated link. Pipe and Wrap return *Conn values
// behind net.Conn; use a type assertion to reach Stats and CloseWrite.
type Conn struct {
	rx, tx       *link
	laddr, raddr net.Addr
	rd, wd       *deadline.Deadline

	closeOnce sync.Once
	done      chan struct{} // closed by Close

	// Set only by Wrap.
	inner     net.Conn
	abortOnce sync.Once
	aborted   chan struct{} // closed by abort: drop pending data now
	pumps     sync.WaitGroup
	pumpsDone chan struct{} // closed when both pumps have returned
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "netem" }
func (pipeAddr) String() string  { return "netem-pipe" }

func newConn(rx, tx *link, laddr, raddr net.Addr) *Conn {
	return &Conn{
		rx: rx, tx: tx, laddr: laddr, raddr: raddr,
		rd: deadline.New(), wd: deadline.New(),
		done: make(chan struct{}),
	}
}

// Pipe returns two connected conns: data written on one arrives at the
// other after the profile's effects, each direction independently (the
// first conn's writes use Seed's first stream, the second conn's the
// second). Both are *Conn. Pipe starts no goroutines.
func Pipe(p Profile) (net.Conn, net.Conn) {
	ab, ba := newLink(p, 0), newLink(p, 1)
	return newConn(ba, ab, pipeAddr{}, pipeAddr{}), newConn(ab, ba, pipeAddr{}, pipeAddr{})
}

// Wrap puts the emulator on an existing connection: writes are delayed per
// profile before they reach c, and bytes read from c pass through the
// same profile (reverse direction) before Read returns them. The result is
// a *Conn that owns c and the goroutines that move its bytes; Close stops
// them and closes c once the data already written has been delivered
// (bounded by the scheduled delivery time plus a few seconds). CloseWrite half-closes c
// after the pending data when c supports CloseWrite (as *net.TCPConn does).
func Wrap(c net.Conn, p Profile) net.Conn {
	w := newConn(newLink(p, 1), newLink(p, 0), c.LocalAddr(), c.RemoteAddr())
	w.inner = c
	w.aborted = make(chan struct{})
	w.pumpsDone = make(chan struct{})
	w.pumps.Add(2)
	go w.pumpOut()
	go w.pumpIn()
	go func() {
		// Owned by the two pumps: returns as soon as both have.
		w.pumps.Wait()
		close(w.pumpsDone)
		if w.isClosed() {
			c.Close()
		}
	}()
	return w
}

// pumpOut delivers the emulated outgoing stream to the wrapped conn.
func (w *Conn) pumpOut() {
	defer w.pumps.Done()
	buf := make([]byte, MaxSegment)
	for {
		n, err := w.tx.read(buf, w.aborted, nil)
		if n > 0 {
			if _, werr := w.inner.Write(buf[:n]); werr != nil {
				w.tx.closeRead(fmt.Errorf("netem: writing to %s: %w", w.raddr, werr))
				return
			}
		}
		if err == io.EOF {
			if !w.isClosed() {
				if cw, ok := w.inner.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// pumpIn feeds bytes read from the wrapped conn into the emulated incoming
// stream.
func (w *Conn) pumpIn() {
	defer w.pumps.Done()
	buf := make([]byte, MaxSegment)
	for {
		n, err := w.inner.Read(buf)
		if n > 0 {
			if _, werr := w.rx.write(buf[:n], w.done, nil); werr != nil {
				return
			}
		}
		if err != nil {
			if w.isClosed() {
				return
			}
			if err == io.EOF {
				w.rx.closeWrite(nil)
			} else {
				w.rx.closeWrite(fmt.Errorf("netem: reading from %s: %w", w.raddr, err))
			}
			return
		}
	}
}

func (c *Conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: c.laddr.Network(), Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read reads bytes that have crossed the emulated link. It returns io.EOF
// once the peer has closed and every byte it wrote has been read.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.rx.read(b, c.done, c.rd.Wait())
	return n, c.opErr("read", err)
}

// Write schedules b for delivery and returns once it is queued; it blocks
// only while the direction's window is full.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.tx.write(b, c.done, c.wd.Wait())
	return n, c.opErr("write", err)
}

// CloseWrite ends this side's stream: the peer reads the pending data and
// then io.EOF. Reading continues to work.
func (c *Conn) CloseWrite() error {
	if c.isClosed() {
		return c.opErr("close", net.ErrClosed)
	}
	c.tx.closeWrite(nil)
	return nil
}

// Close closes this side. Data already written is still delivered, then
// the peer reads io.EOF; the peer's later writes fail with
// io.ErrClosedPipe. Blocked Read and Write calls on this side return
// net.ErrClosed.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.done)
		c.tx.closeWrite(nil)
		c.rx.closeRead(io.ErrClosedPipe)
		if c.inner != nil {
			now := time.Now()
			c.inner.SetReadDeadline(now) // unblocks pumpIn
			c.inner.SetWriteDeadline(c.tx.lastArrival().Add(lingerGrace))
			select {
			case <-c.pumpsDone:
				// Both pumps returned before Close: nobody else closes c.
				c.inner.Close()
			default:
			}
		}
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	return nil
}

// abort closes c and drops whatever it has not delivered yet.
func (c *Conn) abort() {
	c.Close()
	if c.inner == nil {
		return
	}
	c.abortOnce.Do(func() {
		close(c.aborted)
		c.inner.Close()
	})
}

// LocalAddr returns the local address (the wrapped conn's for Wrap).
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the remote address (the wrapped conn's for Wrap).
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.rd.Set(t)
	c.wd.Set(t)
	return nil
}

// SetReadDeadline sets the deadline of pending and future Read calls.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Write calls.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opErr("set", net.ErrClosed)
	}
	c.wd.Set(t)
	return nil
}

// Stats reports what this conn has sent and received so far.
func (c *Conn) Stats() ConnStats {
	return ConnStats{Sent: c.tx.snapshot(), Received: c.rx.snapshot()}
}
