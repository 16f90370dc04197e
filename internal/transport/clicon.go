package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/spec"
)

// Reverse connections (clicon=): the server dials its one client, and the
// client listens. The wire handshake keeps its roles (kdsrv is the wire
// server on the connection it dialed), and so does TLS: ssl with clicon=
// wraps the connections of this file exactly as it wraps a listener's.

// Back-off and patience of a reverse server.
const (
	// CliconFirstDelay is the wait after the first failed dial; it doubles
	// after each failure up to CliconMaxDelay.
	CliconFirstDelay = 250 * time.Millisecond
	// CliconMaxDelay caps the wait between dials.
	CliconMaxDelay = 5 * time.Second
	// DefaultCliconWindow is how long a server without -clicon-retry keeps
	// trying to reach a client that is not listening yet.
	DefaultCliconWindow = 30 * time.Second
	// cliconDialTimeout bounds one dial.
	cliconDialTimeout = 10 * time.Second
)

// ErrReverseGone is wrapped by the permanent errors of a reverse listener
// that will not dial again: the client could not be reached within the
// window, or its connection was closed, and Options.CliconRetry is off.
var ErrReverseGone = errors.New("reverse connection ended")

// cliconListener is the server side of a reverse connection: Accept dials
// the client. It hands out one connection at a time.
type cliconListener struct {
	t       *spec.Transport
	o       Options
	network string
	addr    string // client host:port
	display string
	dialer  net.Dialer

	ctx    context.Context // ends on Close
	cancel context.CancelFunc

	mu        sync.Mutex // serialises Accept
	active    chan struct{}
	start     time.Time // when the current dialing phase began
	delay     time.Duration
	permanent error
}

// listenClicon serves a reverse transport: nothing listens; Accept dials
// the client named by clicon= on port=.
func listenClicon(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	if t.Port.IsRange() {
		return nil, fmt.Errorf("tcp transport: a reverse connection needs one port (the client's), not the range %s", t.Port)
	}
	if o.CliconWindow <= 0 {
		o.CliconWindow = DefaultCliconWindow
	}
	l := &cliconListener{
		t:       t,
		o:       o,
		network: tcpNetwork(t.IPVersion),
		addr:    net.JoinHostPort(t.Clicon, strconv.Itoa(int(t.Port.Lo))),
		display: cliconDisplay(t),
		dialer:  net.Dialer{Timeout: cliconDialTimeout, KeepAlive: 30 * time.Second},
	}
	if o.BindHost != "" {
		ip, err := netip.ParseAddr(strings.Trim(o.BindHost, "[]"))
		if err != nil {
			return nil, fmt.Errorf("tcp transport: -bind %q: a reverse connection dials from a local IP address; give an address, not a name", o.BindHost)
		}
		l.dialer.LocalAddr = &net.TCPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

// cliconDisplay is "tcp:clicon=Client,port=N[,ipversion=6]".
func cliconDisplay(t *spec.Transport) string {
	d := string(t.Proto) + ":clicon=" + t.Clicon + ",port=" + strconv.Itoa(int(t.Port.Lo))
	if t.IPVersion != 0 {
		d += ",ipversion=" + strconv.Itoa(t.IPVersion)
	}
	return d
}

// Display is the transport as the operator gave it (without password).
func (l *cliconListener) Display() string { return l.display }

// Reverse reports that this listener dials out: it is never announced.
func (l *cliconListener) Reverse() bool { return true }

// Addr is the client's address (host:port as given, not resolved).
func (l *cliconListener) Addr() net.Addr { return cliconAddr{l.network, l.addr} }

// Close stops dialing and unblocks Accept. A connection already handed
// out stays open; its owner closes it.
func (l *cliconListener) Close() error {
	l.cancel()
	return nil
}

// Accept returns a connection to the client. While a connection is out,
// it waits for that connection to be closed; then, with CliconRetry, it
// dials again, and without it returns a permanent error wrapping
// ErrReverseGone. A failed dial returns a temporary error (the caller logs
// it and calls again; the next call waits the back-off first); when the
// first connection cannot be made within Options.CliconWindow and
// CliconRetry is off, the error is permanent.
func (l *cliconListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.permanent != nil {
		return nil, l.permanent
	}
	if l.active != nil {
		select {
		case <-l.active:
		case <-l.ctx.Done():
			return nil, net.ErrClosed
		}
		l.active = nil
		if !l.o.CliconRetry {
			l.permanent = &reverseGoneError{msg: fmt.Sprintf("the reverse connection to %s was closed; restart kdsrv to connect again (or run it with -clicon-retry)", l.addr)}
			return nil, l.permanent
		}
		l.start, l.delay = time.Time{}, 0
	}
	if l.start.IsZero() {
		l.start = time.Now()
	}
	if l.delay > 0 {
		t := time.NewTimer(l.delay)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			t.Stop()
			return nil, net.ErrClosed
		}
	}
	c, err := l.dialer.DialContext(l.ctx, l.network, l.addr)
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		done := make(chan struct{})
		l.active = done
		l.delay = 0
		return &observedConn{Conn: c, done: done}, nil
	}
	if l.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	if !l.o.CliconRetry && time.Since(l.start) >= l.o.CliconWindow {
		l.permanent = &reverseGoneError{err: unwrapOp(err), msg: fmt.Sprintf("could not reach the client at %s within %v: %v; start kdclient with server=@{%s:clicon=<this host>,port=%d} first, or run kdsrv with -clicon-retry",
			l.addr, l.o.CliconWindow, unwrapOp(err), l.t.Proto, l.t.Port.Lo)}
		return nil, l.permanent
	}
	l.delay = min(max(2*l.delay, CliconFirstDelay), CliconMaxDelay)
	return nil, &cliconDialError{addr: l.addr, err: unwrapOp(err), next: l.delay}
}

// reverseGoneError is a permanent error of a reverse listener.
type reverseGoneError struct {
	msg string
	err error // the last dial error, if any
}

func (e *reverseGoneError) Error() string { return e.msg }
func (e *reverseGoneError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrReverseGone}
	}
	return []error{ErrReverseGone, e.err}
}

// unwrapOp drops the *net.OpError wrapper, whose text repeats the
// address: "dial tcp 127.0.0.1:53: connect: connection refused" becomes
// "connect: connection refused".
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// cliconDialError is a failed dial that will be retried. It is
// Temporary, so that accept loops log it and call Accept again.
type cliconDialError struct {
	addr string
	err  error
	next time.Duration
}

func (e *cliconDialError) Error() string {
	return fmt.Sprintf("cannot reach the client at %s yet: %v; trying again in %v (is kdclient waiting there with server=@{tcp:clicon=...}?)", e.addr, e.err, e.next)
}
func (e *cliconDialError) Unwrap() error   { return e.err }
func (e *cliconDialError) Temporary() bool { return true }
func (e *cliconDialError) Timeout() bool   { return false }

// observedConn tells its listener when it has been closed (also when TLS
// above it closes it).
type observedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *observedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// cliconAddr is the client address of a reverse listener.
type cliconAddr struct{ network, addr string }

func (a cliconAddr) Network() string { return a.network }
func (a cliconAddr) String() string  { return a.addr }

// EventKind says what a waiting dialer reports.
type EventKind int

// Events of a reverse-connection client.
const (
	// EventWaiting: the client listens on Port and waits for the server.
	EventWaiting EventKind = iota + 1
	// EventRejected: a connection from Remote was refused because it did
	// not come from the expected server; waiting goes on.
	EventRejected
)

// Event is a progress report of a dialer that waits for its peer (the
// client side of a reverse connection). Text is a complete sentence for
// the user, without a program-name prefix.
type Event struct {
	Kind   EventKind
	Port   int
	Remote net.Addr
	Text   string
}

type eventsKey struct{}

// WithEvents returns a context whose dials report their progress to f
// (kdclient prints the events on standard error). Without it events are
// dropped.
func WithEvents(ctx context.Context, f func(Event)) context.Context {
	return context.WithValue(ctx, eventsKey{}, f)
}

func report(ctx context.Context, e Event) {
	if f, ok := ctx.Value(eventsKey{}).(func(Event)); ok && f != nil {
		f(e)
	}
}

// CliconDialOptions adjust DialClicon.
type CliconDialOptions struct {
	// BindHost restricts the listening socket to one local address
	// (default: every interface).
	BindHost string
}

// dialClicon is the client side of a reverse connection for the
// transport table.
func dialClicon(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	return DialClicon(ctx, t, CliconDialOptions{})
}

// DialClicon is the client side of a reverse connection: it listens on the
// first free port of t.Port, reports EventWaiting (see WithEvents), and
// accepts the first connection whose remote address is one of the
// addresses of t.Clicon (the expected server); others are closed and
// reported as EventRejected. It stops listening before it returns, so a
// second server cannot connect. It waits until ctx ends.
func DialClicon(ctx context.Context, t *spec.Transport, o CliconDialOptions) (net.Conn, error) {
	want, err := expectedAddrs(ctx, t.Clicon, t.IPVersion)
	if err != nil {
		return nil, err
	}
	ln, port, err := ListenTCPRange(ctx, o.BindHost, t.Port, t.IPVersion)
	if err != nil {
		return nil, fmt.Errorf("waiting for kdsrv (clicon=%s): %w", t.Clicon, err)
	}
	defer ln.Close()
	report(ctx, Event{Kind: EventWaiting, Port: port,
		Text: fmt.Sprintf("waiting for kdsrv to connect on tcp port %d (from %s)", port, t.Clicon)})

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("no kdsrv connected to tcp port %d from %s: %w; start kdsrv -t %s:port=%d,clicon=<this host> on %s",
					port, t.Clicon, context.Cause(ctx), t.Proto, port, t.Clicon)
			}
			return nil, fmt.Errorf("waiting for kdsrv on tcp port %d: %w", port, err)
		}
		if from, ok := addrIn(c.RemoteAddr(), want); !ok {
			c.Close()
			report(ctx, Event{Kind: EventRejected, Port: port, Remote: c.RemoteAddr(),
				Text: fmt.Sprintf("warning: refused a connection from %s: kdsrv is expected from %s (%s); still waiting", from, t.Clicon, joinAddrs(want))})
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
			_ = tc.SetKeepAlive(true)
		}
		return c, nil
	}
}

// expectedAddrs resolves the server a reverse client expects.
func expectedAddrs(ctx context.Context, host string, ipversion int) ([]netip.Addr, error) {
	h := strings.Trim(host, "[]")
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a.Unmap().WithZone("")}, nil
	}
	network := "ip"
	switch ipversion {
	case 4:
		network = "ip4"
	case 6:
		network = "ip6"
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(rctx, network, h)
	if err != nil {
		return nil, fmt.Errorf("clicon=%s: cannot resolve the server's name, so its connection could not be recognised: %w; give its IP address instead", host, err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		out = append(out, a.Unmap().WithZone(""))
	}
	return out, nil
}

// addrIn reports whether the IP of a is in want, and a's IP as text.
func addrIn(a net.Addr, want []netip.Addr) (string, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String(), false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return a.String(), false
	}
	ip = ip.Unmap()
	for _, w := range want {
		if w == ip {
			return ip.String(), true
		}
	}
	return ip.String(), false
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
