package targetlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Back-off between redials of a reconnecting link, and the bound of one
// attempt.
const (
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 2 * time.Second
	attemptBudget = 5 * time.Second
)

// dialFunc opens a fresh connection to the far end.
type dialFunc func(ctx context.Context) (net.Conn, error)

// streamLink is a Stream over a net.Conn (unix socket, named pipe, TCP). With
// reconnect it survives the far end going away: see the package
// documentation.
type streamLink struct {
	desc      string
	dial      dialFunc
	reconnect bool

	ctx    context.Context // done when the link is closed; bounds redials
	cancel context.CancelFunc
	wg     sync.WaitGroup // the redial goroutine

	mu         sync.Mutex
	conn       net.Conn      // nil while disconnected (reconnect only)
	gen        uint64        // counts connections, to ignore stale failures
	up         chan struct{} // closed when a connection is installed
	rdl, wdl   time.Time     // deadlines, re-applied to every new connection
	rdlChanged chan struct{} // closed and replaced when the read deadline changes
	closed     bool
	reconnects int
	// reconnected is closed and replaced when a new connection is installed.
	reconnected chan struct{}
}

func newStreamLink(desc string, c net.Conn, dial dialFunc, reconnect bool) *streamLink {
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan struct{})
	close(up)
	return &streamLink{
		desc: desc, dial: dial, reconnect: reconnect,
		ctx: ctx, cancel: cancel,
		conn: c, gen: 1, up: up, rdlChanged: make(chan struct{}),
		reconnected: make(chan struct{}),
	}
}

// String describes the link.
func (l *streamLink) String() string { return l.desc }

// Reconnected returns a channel that is closed when the link is next
// re-established (a new connection replaced a lost one).
func (l *streamLink) Reconnected() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reconnected
}

// Reconnects returns how many times the link was re-established.
func (l *streamLink) Reconnects() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reconnects
}

func (l *streamLink) closedErr(op string) error {
	return fmt.Errorf("%s %s: %w", op, l.desc, net.ErrClosed)
}

func (l *streamLink) timeoutErr(op string) error {
	return fmt.Errorf("%s %s: %w", op, l.desc, os.ErrDeadlineExceeded)
}

// passErr returns an error of the underlying connection unchanged, except
// that a timeout of any origin becomes os.ErrDeadlineExceeded-compatible.
func (l *streamLink) passErr(op string, err error) error {
	if isTimeout(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return l.timeoutErr(op)
	}
	return err
}

// Read reads from the connection. With reconnect, a lost connection is
// replaced in the background and Read waits for it, until the read deadline.
func (l *streamLink) Read(p []byte) (int, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, l.closedErr("read")
		}
		c, gen, up, dl, dlch := l.conn, l.gen, l.up, l.rdl, l.rdlChanged
		l.mu.Unlock()
		if c == nil {
			if err := l.waitUp(up, dl, dlch); err != nil {
				return 0, err
			}
			continue
		}
		n, err := c.Read(p)
		if err == nil {
			return n, nil
		}
		if err := l.failed("read", gen, err); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// failed handles the error err of connection number gen in op (read or
// write). Without reconnect it is passed on, as are a timeout and the
// link's own close; otherwise the connection is dropped and redialled, and
// failed returns nil.
func (l *streamLink) failed(op string, gen uint64, err error) error {
	if !l.reconnect {
		return l.passErr(op, err)
	}
	if isTimeout(err) {
		return l.timeoutErr(op)
	}
	if l.isClosed() {
		return l.closedErr(op)
	}
	l.lost(gen)
	return nil
}

// waitUp waits until a connection is installed, the read deadline passes or
// changes, or the link is closed.
func (l *streamLink) waitUp(up <-chan struct{}, dl time.Time, dlch <-chan struct{}) error {
	var expire <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return l.timeoutErr("read")
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expire = t.C
	}
	select {
	case <-up:
		return nil
	case <-dlch:
		return nil // look again with the new deadline
	case <-expire:
		return l.timeoutErr("read")
	case <-l.ctx.Done():
		return l.closedErr("read")
	}
}

// Write writes to the connection. With reconnect, bytes written while the far
// end is away are discarded and reported as written, as on a serial line
// with nothing attached.
func (l *streamLink) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, l.closedErr("write")
	}
	c, gen := l.conn, l.gen
	l.mu.Unlock()
	if c == nil {
		return len(p), nil
	}
	n, err := c.Write(p)
	if err == nil {
		return n, nil
	}
	if err := l.failed("write", gen, err); err != nil {
		return n, err
	}
	return len(p), nil
}

func (l *streamLink) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// lost drops connection number gen, if it is still the current one, and
// starts redialling.
func (l *streamLink) lost(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || gen != l.gen || l.conn == nil {
		return
	}
	_ = l.conn.Close()
	l.conn = nil
	l.up = make(chan struct{})
	l.wg.Add(1)
	go l.redial()
}

// redial dials with back-off until a connection is made or the link is
// closed, and installs the connection with the current deadlines.
func (l *streamLink) redial() {
	defer l.wg.Done()
	backoff := minBackoff
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(l.ctx, attemptBudget)
		c, err := l.dial(actx)
		cancel()
		if err == nil {
			l.mu.Lock()
			if l.closed {
				l.mu.Unlock()
				_ = c.Close()
				return
			}
			_ = c.SetReadDeadline(l.rdl)
			_ = c.SetWriteDeadline(l.wdl)
			l.conn = c
			l.gen++
			l.reconnects++
			close(l.up)
			close(l.reconnected)
			l.reconnected = make(chan struct{})
			l.mu.Unlock()
			return
		}
		backoff = min(2*backoff, maxBackoff)
		t.Reset(backoff)
	}
}

// SetReadDeadline sets the deadline for pending and future Read calls,
// including a Read waiting for a reconnection.
func (l *streamLink) SetReadDeadline(t time.Time) error {
	return l.setDeadline("read", func() {
		l.rdl = t
		close(l.rdlChanged)
		l.rdlChanged = make(chan struct{})
	}, func(c net.Conn) error { return c.SetReadDeadline(t) })
}

// SetWriteDeadline sets the deadline for pending and future Write calls.
func (l *streamLink) SetWriteDeadline(t time.Time) error {
	return l.setDeadline("write", func() { l.wdl = t }, func(c net.Conn) error { return c.SetWriteDeadline(t) })
}

// setDeadline records a new read or write deadline (keep, under l.mu) and
// passes it to the current connection (set). With reconnect a failure
// there does not matter: the deadline is applied again to the next
// connection.
func (l *streamLink) setDeadline(which string, keep func(), set func(net.Conn) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closedErr("set " + which + " deadline on")
	}
	keep()
	if l.conn == nil {
		return nil
	}
	if err := set(l.conn); err != nil && !l.reconnect {
		return err
	}
	return nil
}

// Close closes the connection, stops any redialling and unblocks pending
// Read and Write calls. A second Close returns an error wrapping
// net.ErrClosed.
func (l *streamLink) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.closedErr("close")
	}
	l.closed = true
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	l.cancel()
	var err error
	if c != nil {
		err = c.Close()
	}
	l.wg.Wait()
	return err
}

// pipeLink is a VM pipe: a stream link that also reports the debugger's
// resets= setting.
type pipeLink struct {
	*streamLink
	resets int
}

// Resets returns the resets= value of the target specification: how many
// RESET packets the debugger sends while synchronising (0 = unlimited, -1 =
// not given). It does not change the stream.
func (l *pipeLink) Resets() int { return l.resets }
