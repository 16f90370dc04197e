package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"kdsrv/internal/commux"
	"kdsrv/internal/serial"
	"kdsrv/internal/spec"
)

// The com transport: clients reach kdsrv over a serial line (a null-modem
// cable), with channels 0-254 multiplexing independent connections over
// one port. The line carries our own framing (internal/commux, specified
// in docs/commux.md), not KDCOM: a COM port used as a *target link*
// (trans=@{com:port=...}) carries raw KDCOM and has no channels, and is
// handled by internal/targetlink, not here.
//
// The com listeners of one server, and the com dials of one client, that
// name the same device share one multiplexer through a COMPorts (see
// Options.COM and Dialer.COM): the device is opened once (serial ports are
// exclusive) and closed when the last listener or connection on it is
// closed.

const (
	// DefaultCOMDialTimeout bounds a com dial whose context has no
	// deadline: the time the server's multiplexer has to answer the OPEN.
	DefaultCOMDialTimeout = 10 * time.Second
	// comCloseLinger is how long closing the last connection on a port
	// waits for the peer to acknowledge what was still queued (a final
	// wire Bye, the close handshake) before the port itself is closed.
	comCloseLinger = time.Second
)

// COMPorts shares one multiplexer per serial port among the com listeners
// or dials of its owner (a server, a client). The zero value is ready to
// use; set its fields before the first use.
type COMPorts struct {
	// Config is the multiplexer setting (retransmission time-out, window,
	// frame size, keep-alive) of the ports it opens. Both ends of a line
	// work with any combination of settings. The zero Config means
	// commux.DefaultConfig.
	Config commux.Config
	// Open opens a device (default serial.Open); tests replace it.
	Open func(path string, baud int) (io.ReadWriteCloser, error)

	mu  sync.Mutex
	reg commux.Registry
}

func (p *COMPorts) get(dev string, baud int) (*commux.Mux, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reg.Config = p.Config
	open := p.Open
	if open == nil {
		open = func(path string, baud int) (io.ReadWriteCloser, error) { return serial.Open(path, baud) }
	}
	return p.reg.Get(dev, baud, func() (io.ReadWriteCloser, error) { return open(dev, baud) })
}

// COMLine is implemented by the listeners and connections of the com
// transport: it reports the counters of the serial line they use.
type COMLine interface {
	// LineStats returns the counters of the line's multiplexer (frames,
	// checksum errors, resyncs, retransmissions).
	LineStats() commux.Stats
}

// comHandle is one holder's share of a port's multiplexer: a listener
// and the connections it accepted, or one dialled connection. The last
// one to go releases the share, and the registry closes the port when
// every share is released.
type comHandle struct {
	mux     *commux.Mux
	release func()

	mu   sync.Mutex
	refs int // 0: released, the multiplexer may be closed
}

// openCOMPort takes a share of dev from ports (nil: a COMPorts of its
// own).
func openCOMPort(ports *COMPorts, dev string, baud int) (*comHandle, error) {
	if ports == nil {
		ports = &COMPorts{}
	}
	mux, release, err := ports.get(dev, baud)
	if err != nil {
		return nil, err
	}
	return &comHandle{mux: mux, release: release, refs: 1}, nil
}

// acquire takes one more reference; it fails once the share is released.
func (h *comHandle) acquire() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs == 0 {
		return false
	}
	h.refs++
	return true
}

// drop gives up one reference. When it was the last and linger is set,
// it first waits (at most comCloseLinger) for a frame from the peer
// newer than frameMark, so that data queued before a Close is
// acknowledged before the port closes.
func (h *comHandle) drop(linger bool, frameMark uint64) {
	h.mu.Lock()
	h.refs--
	last := h.refs == 0
	h.mu.Unlock()
	if !last {
		return
	}
	if linger {
		h.linger(frameMark)
	}
	h.release()
}

func (h *comHandle) linger(frameMark uint64) {
	deadline := time.NewTimer(comCloseLinger)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for h.mux.Stats().FramesReceived <= frameMark {
		select {
		case <-deadline.C:
			return
		case <-h.mux.Done():
			return
		case <-tick.C:
		}
	}
}

// comDisplay is "com:port=COM2,baud=115200,channel=3": the port as the
// user gave it (normalised by the grammar), without password or hidden.
func comDisplay(t *spec.Transport) string {
	return "com:port=" + t.COMPort + ",baud=" + strconv.Itoa(t.Baud) + ",channel=" + strconv.Itoa(t.Channel)
}

// comDevice maps the port of t to this system's device.
func comDevice(t *spec.Transport) (string, error) {
	dev, err := spec.COMDevice(t.COMPort, runtime.GOOS)
	if err != nil {
		return "", fmt.Errorf("com transport: %w", err)
	}
	return dev, nil
}

// portName names the port for messages: "COM2 (/dev/ttyS1)" or the path.
func portName(t *spec.Transport, dev string) string {
	if dev == t.COMPort {
		return dev
	}
	return t.COMPort + " (" + dev + ")"
}

// comListener is the server side: one channel of a shared port.
type comListener struct {
	ln      net.Listener // the multiplexer's listener on the channel
	h       *comHandle
	display string
	port    string // for messages

	closeOnce sync.Once
	closed    chan struct{}
}

// listenCOM serves com:port=P,baud=N,channel=C.
func listenCOM(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	dev, err := comDevice(t)
	if err != nil {
		return nil, err
	}
	display := comDisplay(t)
	h, err := openCOMPort(o.COM, dev, t.Baud)
	if err != nil {
		return nil, fmt.Errorf("com transport %s: %w", display, err)
	}
	ln, err := h.mux.Listen(t.Channel)
	if err != nil {
		h.drop(false, 0)
		if errors.Is(err, commux.ErrInUse) {
			return nil, fmt.Errorf("com transport %s: channel %d of %s is given twice; give each -t com: on one port its own channel", display, t.Channel, portName(t, dev))
		}
		return nil, fmt.Errorf("com transport %s: %w", display, err)
	}
	return &comListener{ln: ln, h: h, display: display, port: portName(t, dev), closed: make(chan struct{})}, nil
}

// Display is the transport as clients spell it, e.g.
// "com:port=COM2,baud=115200,channel=3".
func (l *comListener) Display() string { return l.display }

// Addr is com:<device>#<channel>.
func (l *comListener) Addr() net.Addr { return l.ln.Addr() }

// LineStats returns the counters of the serial line.
func (l *comListener) LineStats() commux.Stats { return l.h.mux.Stats() }

// Accept waits for a client to open the channel. Once the serial line
// itself has failed (device unplugged or gone), it returns a permanent
// error that says so.
func (l *comListener) Accept() (net.Conn, error) {
	c, err := l.ln.Accept()
	if err != nil {
		select {
		case <-l.closed:
			return nil, &net.OpError{Op: "accept", Net: "com", Addr: l.Addr(), Err: net.ErrClosed}
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("serial line %s failed: %w; check the device (a USB adapter may have been unplugged) and restart kdsrv", l.port, err)
	}
	if !l.h.acquire() {
		c.Close()
		return nil, &net.OpError{Op: "accept", Net: "com", Addr: l.Addr(), Err: net.ErrClosed}
	}
	return &comConn{Conn: c, h: l.h}, nil
}

// Close stops listening on the channel. Connections already accepted stay
// open; the port is closed when they are closed too (and no other channel
// of this process uses it).
func (l *comListener) Close() error {
	err := error(&net.OpError{Op: "close", Net: "com", Addr: l.Addr(), Err: net.ErrClosed})
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
		l.h.drop(false, 0)
	})
	return err
}

// comConn is a connection on one channel. Closing it gives up its share
// of the port.
type comConn struct {
	net.Conn
	h    *comHandle
	once sync.Once
}

// LineStats returns the counters of the serial line.
func (c *comConn) LineStats() commux.Stats { return c.h.mux.Stats() }

// Close closes the channel's connection (data already written is still
// delivered). When it is the last user of the port, it waits briefly for
// the peer to acknowledge that data before the port is closed.
func (c *comConn) Close() error {
	err := error(&net.OpError{Op: "close", Net: "com", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed})
	c.once.Do(func() {
		mark := c.h.mux.Stats().FramesReceived
		// A zero-length write fails at once when the connection is
		// already broken: then there is nothing to wait for.
		_, werr := c.Conn.Write(nil)
		err = c.Conn.Close()
		c.h.drop(werr == nil, mark)
	})
	return err
}

// dialCOM is the client side: open the local port (shared through ports)
// and the channel.
func dialCOM(ctx context.Context, t *spec.Transport, ports *COMPorts) (net.Conn, error) {
	dev, err := comDevice(t)
	if err != nil {
		return nil, err
	}
	h, err := openCOMPort(ports, dev, t.Baud)
	if err != nil {
		return nil, fmt.Errorf("cannot reach kdsrv over %s: %w", portName(t, dev), err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCOMDialTimeout)
		defer cancel()
	}
	c, err := h.mux.Dial(ctx, t.Channel)
	if err != nil {
		h.drop(false, 0)
		return nil, comDialError(t, dev, err)
	}
	return &comConn{Conn: c, h: h}, nil
}

// comDialError explains a failed dial: what was tried and what to check.
func comDialError(t *spec.Transport, dev string, err error) error {
	where := fmt.Sprintf("COM channel %d of %s", t.Channel, portName(t, dev))
	serverForm := fmt.Sprintf("-t com:port=...,baud=%d,channel=%d", t.Baud, t.Channel)
	switch {
	case errors.Is(err, commux.ErrNoListener):
		return &comError{err: err, msg: fmt.Sprintf("no kdsrv listening on %s: the kdsrv at the other end of the cable answers, but not on channel %d; start it with %s, or dial a channel it listens on (its start-up lines show them)",
			where, t.Channel, serverForm)}
	case errors.Is(err, commux.ErrRefused):
		return &comError{err: err, msg: fmt.Sprintf("kdsrv refused a connection on %s: it is not accepting clients fast enough; try again", where)}
	case errors.Is(err, commux.ErrNoAnswer), errors.Is(err, context.DeadlineExceeded):
		return &comError{err: err, msg: fmt.Sprintf("no kdsrv answered on %s: check that kdsrv runs with %s on the other end of the cable, that the cable is a null-modem cable and connected, and that both sides use baud=%d",
			where, serverForm, t.Baud)}
	case errors.Is(err, context.Canceled):
		return &comError{err: err, msg: fmt.Sprintf("connecting to kdsrv on %s: canceled", where)}
	}
	return &comError{err: err, msg: fmt.Sprintf("cannot reach kdsrv on %s: %v", where, err)}
}

// comError is a dial failure with a complete message; it wraps the
// multiplexer's error (commux.ErrNoListener, ...) for errors.Is.
type comError struct {
	msg string
	err error
}

func (e *comError) Error() string { return e.msg }
func (e *comError) Unwrap() error { return e.err }
