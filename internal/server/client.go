package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/transport"
	"kdsrv/internal/wire"
)

// client is one connected smart client.
type client struct {
	s     *Server
	nc    net.Conn
	l     *listener
	from  string
	since time.Time

	// source is what the limits count this client as (sourceOf);
	// attempt is set while it holds a password attempt (guard.admit), and
	// preAuth while it counts as unauthenticated (guard.enter).
	source  string
	attempt bool
	preAuth bool

	// opened is set once the client has been told its target is open
	// (Opened sent): packets from the target go to it only from then on.
	opened atomic.Bool
	// sess is the number of the client's current session (0: none).
	sess atomic.Uint32
	// refused counts KD packets refused from this client (for the log).
	refused atomic.Uint64

	mu       sync.Mutex
	wc       *wire.Conn
	tgt      *target
	watching *watchState // a console watch (console.go)
	stopped  bool
	reason   wire.Code
}

func (s *Server) startClient(nc net.Conn, l *listener) {
	c := &client{s: s, nc: nc, l: l, from: remoteString(nc), since: time.Now(), source: sourceOf(nc, l.t)}
	if r := s.guard.enter(c.source); r != nil {
		s.turnAway(c, r)
		return
	}
	c.preAuth = true
	if l.t.Password != "" {
		if r := s.guard.admit(c.source); r != nil {
			s.guard.leave(c.source)
			s.turnAway(c, r)
			return
		}
		c.attempt = true
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.endPreAuth(authNone)
		closeQuietly(nc)
		return
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.run()
	}()
}

func remoteString(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// endPreAuth ends the client's unauthenticated phase and records how its
// password attempt, if it made one, ended. It runs once.
func (c *client) endPreAuth(o outcome) {
	s := c.s
	if c.preAuth {
		c.preAuth = false
		s.guard.leave(c.source)
	}
	if !c.attempt {
		return
	}
	c.attempt = false
	fails, backoff := s.guard.done(c.source, o)
	if o != authFailed {
		return
	}
	s.warn("wrong password", "from", c.from, "source", c.source, "transport", c.l.ln.Display(),
		"failures", fails, "next_attempt_in", backoff.String())
}

// turnAway refuses a connection before its handshake: an Error frame with
// the reason (wire.Refuse, written by a bounded number of goroutines so
// that a flood cannot stall the accept loop), and a log line.
func (s *Server) turnAway(c *client, r *refusal) {
	code, result := wire.TooManyAttempts, connRefusedThrottle
	if r.busy {
		code, result = wire.Busy, connRefusedBusy
	}
	s.metrics.connection(string(c.l.t.Proto), result)
	msg := r.message()
	s.warn("connection refused before authentication", "from", c.from, "source", c.source, "transport", c.l.ln.Display(),
		"code", code.String(), "reason", msg)
	select {
	case s.refusers <- struct{}{}:
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.refusers }()
			_ = wire.Refuse(c.nc, code, msg)
		}()
	default:
		closeQuietly(c.nc)
	}
}

// warn logs a refusal, a failed password or a resource problem, at most
// Limits.LogPerSecond lines per second.
func (s *Server) warn(msg string, attrs ...any) {
	ok, left := s.logLim.allow()
	if !ok {
		return
	}
	if left > 0 {
		attrs = append(attrs, "suppressed", left)
	}
	s.cfg.Logger.Warn(msg, attrs...)
}

// log is the client's logger: every line names the client's address (or,
// on a local pipe, its process) and transport, and its session once one is
// open.
func (c *client) log() *slog.Logger {
	l := c.s.cfg.Logger.With("from", c.from, "transport", c.l.ln.Display())
	if n := c.sess.Load(); n != 0 {
		l = l.With("session", n)
	}
	return l
}

func (c *client) String() string {
	if c.from == "" {
		return c.l.ln.Display()
	}
	return c.from + " on " + c.l.ln.Display()
}

// stop ends the client's connection from another goroutine.
func (c *client) stop(reason wire.Code) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.reason = reason
	wc := c.wc
	c.mu.Unlock()
	if wc != nil {
		_ = wc.CloseWithReason(reason)
	} else {
		closeQuietly(c.nc)
	}
}

func (c *client) run() {
	s := c.s
	defer func() {
		c.detach()
		c.mu.Lock()
		wc := c.wc
		c.stopped = true
		c.mu.Unlock()
		if wc != nil {
			_ = wc.Close()
		} else {
			closeQuietly(c.nc)
		}
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	c.log().Info("client connected")
	binding, err := transport.Binding(c.nc)
	if err != nil {
		c.endPreAuth(authNone)
		c.log().Info("client refused", "reason", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.cfg.HandshakeTimeout)
	wc, err := wire.Server(ctx, c.nc, wire.Config{
		Password:         c.l.t.Password,
		Binding:          binding,
		HandshakeTimeout: s.cfg.HandshakeTimeout,
		KeepAlive:        s.cfg.KeepAlive,
		Software:         Software,
		Salt:             s.salt,
		Keys:             s.keys,
	})
	cancel()
	if err != nil {
		result := connHandshakeFailed
		if wrongPassword(err) {
			result = connAuthFailed
			c.endPreAuth(authFailed)
		} else {
			c.endPreAuth(authNone)
		}
		c.log().Info("client refused", "reason", err.Error())
		s.metrics.connection(string(c.l.t.Proto), result)
		return
	}
	c.endPreAuth(authOK)
	s.metrics.connection(string(c.l.t.Proto), connAccepted)
	c.mu.Lock()
	c.wc = wc
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		_ = wc.CloseWithReason(c.reason)
		return
	}
	auth := "none"
	if c.l.t.Password != "" {
		auth = "password"
	}
	c.log().Info("client authenticated", "software", wc.PeerSoftware(), "auth", auth)
	s.cfg.Trace.Note(kdtrace.HopServer, 0, "link", fmt.Sprintf("client %s connected (%s)", c, wc.PeerSoftware()))
	defer s.cfg.Trace.Note(kdtrace.HopServer, 0, "link", fmt.Sprintf("client %s gone", c))
	for {
		f, err := wc.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && !c.isStopped() {
				c.log().Info("client disconnected", logx.Err(err))
			} else {
				c.log().Info("client disconnected")
			}
			return
		}
		if err := c.handle(f); err != nil {
			c.log().Info("client disconnected", logx.Err(err))
			return
		}
	}
}

// wrongPassword reports whether a failed server handshake was a failed
// password attempt: the client's proof did not match, or it skipped it.
func wrongPassword(err error) bool {
	var pe *wire.ProtocolError
	return errors.As(err, &pe) && pe.Code == wire.AccessDenied
}

func (c *client) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// handle processes one frame; an error ends the connection (after an
// Error frame has been sent where the peer should learn why).
func (c *client) handle(f wire.Frame) error {
	switch f.Type {
	case wire.TypeOpen:
		o, err := wire.DecodeOpen(f.Payload)
		if err != nil {
			return c.fail(wire.BadRequest, err.Error())
		}
		return c.open(o)
	case wire.TypeKD:
		t := c.target()
		if t == nil {
			return c.fail(wire.BadRequest, "KD packet before a target was opened")
		}
		pt, payload, err := wire.DecodeKD(f.Payload)
		if err != nil {
			return c.fail(wire.BadRequest, err.Error())
		}
		c.s.cfg.Trace.Packet(kdtrace.HopServer, kdtrace.ToTarget, kd.Packet{Type: kd.PacketType(pt), Payload: payload}, false)
		return t.fromClient(c, pt, payload)
	case wire.TypeBreakIn:
		c.s.cfg.Trace.Note(kdtrace.HopServer, kdtrace.ToTarget, "break-in", "")
		if t := c.target(); t != nil {
			t.breakIn(c)
		}
		return nil
	case wire.TypeReset:
		c.s.cfg.Trace.Note(kdtrace.HopServer, kdtrace.ToTarget, "reset", "the client resynchronises: it asks for the target's state again")
		if t := c.target(); t != nil {
			t.resendState(c)
		}
		return nil
	case wire.TypeDetach:
		c.detach()
		return c.wc.Send(wire.TypeDetached, nil)
	case wire.TypeControl:
		ctl, err := wire.DecodeControl(f.Payload)
		if err != nil {
			return c.fail(wire.BadRequest, err.Error())
		}
		return c.control(ctl)
	}
	return c.fail(wire.BadRequest, fmt.Sprintf("unexpected %s frame", f.Type))
}

// fail sends an Error frame and returns an error that ends the session.
func (c *client) fail(code wire.Code, msg string) error {
	_ = c.wc.SendError(code, msg)
	return fmt.Errorf("%s: %s", code, msg)
}

// refuse reports a failed Open (logged on the server) and ends the
// connection: Error frames are final.
func (c *client) refuse(code wire.Code, msg string) error {
	c.log().Info("session refused", "code", code.String(), "reason", msg)
	return c.fail(code, msg)
}

// refuseErr is refuse for err: a refusal by the allow-list is logged with
// where the path leads (NotAllowedError.Detail), which the client is not
// told.
func (c *client) refuseErr(code wire.Code, err error) error {
	var na *targetlink.NotAllowedError
	if errors.As(err, &na) && na.Resolved != "" {
		c.log().Info("session refused", "code", code.String(), "reason", na.Detail())
		return c.fail(code, err.Error())
	}
	return c.refuse(code, err.Error())
}

func (c *client) target() *target {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tgt
}

func (c *client) open(o wire.Open) error {
	c.mu.Lock()
	watching := c.watching != nil
	c.mu.Unlock()
	if c.target() != nil || watching {
		return c.fail(wire.BadRequest, "a target is already open on this connection; detach first")
	}
	ts, err := spec.ParseTarget(o.Target)
	if err != nil {
		return c.refuse(wire.BadRequest, err.Error())
	}
	if err := ts.FillFromEnv(c.s.cfg.Getenv); err != nil {
		return c.refuse(wire.BadRequest, "on the server: "+err.Error())
	}
	if err := ts.Complete(); err != nil {
		return c.refuse(wire.BadRequest, "on the server: "+err.Error())
	}
	if err := c.s.cfg.Allow.Check(ts); err != nil {
		return c.refuseErr(wire.NotAllowed, err)
	}
	if o.Watch {
		return c.watch(ts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.OpenTimeout)
	defer cancel()
	t, err := c.s.acquireTarget(ctx, c, ts, o.TakeOver)
	if err != nil {
		var inUse *inUseError
		var na *targetlink.NotAllowedError
		switch {
		case errors.As(err, &inUse):
			return c.refuse(wire.InUse, err.Error())
		case errors.As(err, &na), errors.Is(err, errKeyMismatch):
			return c.refuseErr(wire.NotAllowed, err)
		default:
			return c.refuse(wire.TargetUnavailable, err.Error())
		}
	}
	c.mu.Lock()
	c.tgt = t
	c.mu.Unlock()
	c.s.metrics.sessionOpened()
	sess := c.s.nextSess.Add(1)
	c.sess.Store(sess)
	info := t.describe()
	diffs := optionDiffs(t.spec, ts)
	if diffs != "" {
		info += "; " + diffs
	}
	if err := c.wc.Send(wire.TypeOpened, wire.EncodeOpened(wire.Opened{Session: sess, Info: info})); err != nil {
		return err
	}
	c.opened.Store(true)
	c.log().Info("session opened", t.attrs()...)
	// A halted target's state goes to the new client at once, so its
	// debugger sees the stop without the target being reset.
	if diffs != "" {
		c.log().Info("session shares the open link as it is", append(t.attrs(), "differences", diffs)...)
		c.notice(wire.OK, fmt.Sprintf("target %s: %s", t.spec, diffs))
	}
	t.resendState(c)
	t.tellNewOwner(c)
	return nil
}

func (c *client) detach() {
	c.unwatch()
	c.opened.Store(false)
	c.mu.Lock()
	t := c.tgt
	c.tgt = nil
	c.mu.Unlock()
	if t != nil {
		c.s.metrics.sessionClosed()
		t.release(c)
	}
}

// sendKD delivers a packet from the target; errors end the session through
// the read loop, so they are only returned for logging.
func (c *client) sendKD(pt uint16, payload []byte) error {
	if !c.opened.Load() {
		// Before Opened: the target's state reaches the client right
		// after it (resendState); other packets are handled as if
		// nobody owned the target.
		return errors.New("target not open on this connection yet")
	}
	c.mu.Lock()
	wc := c.wc
	c.mu.Unlock()
	if wc == nil {
		return errors.New("no connection")
	}
	c.s.cfg.Trace.Packet(kdtrace.HopServer, kdtrace.ToHost, kd.Packet{Type: kd.PacketType(pt), Payload: payload}, false)
	return wc.SendKD(pt, payload)
}

// notice sends a non-fatal Notice frame: the session goes on.
func (c *client) notice(code wire.Code, text string) {
	c.mu.Lock()
	wc := c.wc
	c.mu.Unlock()
	if wc != nil {
		_ = wc.Send(wire.TypeNotice, wire.EncodeNotice(code, text))
	}
}

func (c *client) sendState(st wire.StateCode, text string) {
	c.mu.Lock()
	wc := c.wc
	c.mu.Unlock()
	if wc != nil {
		c.s.cfg.Trace.Note(kdtrace.HopServer, kdtrace.ToHost, "state", fmt.Sprintf("%s: %s", st, text))
		_ = wc.Send(wire.TypeState, wire.EncodeState(wire.State{State: st, Text: text}))
	}
}

func (c *client) control(ctl wire.Control) error {
	reply := wire.Control{ID: ctl.ID, Command: ctl.Command}
	switch ctl.Command {
	case wire.CmdShutdown:
		if !c.s.cfg.AllowShutdown {
			reply.Status = wire.Refused
			reply.Body = []byte("this kdsrv does not accept remote shutdown; its operator can allow it by starting kdsrv with -allow-endpsrv")
			break
		}
		c.log().Info("client asked the server to shut down")
		reply.Body = []byte("kdsrv is shutting down")
		// Answer first: the shutdown closes this connection.
		err := c.wc.Send(wire.TypeControl, wire.EncodeControl(reply))
		c.s.requestShutdown()
		return err
	case wire.CmdGetInfo:
		reply.Body = []byte(c.s.info())
	case wire.CmdSetOption:
		name, value, _ := strings.Cut(string(ctl.Body), "=")
		t := c.target()
		if t == nil {
			reply.Status = wire.BadRequest
			reply.Body = []byte("open a target before setting session options")
			break
		}
		if err := t.setOption(name, value); err != nil {
			reply.Status = wire.BadRequest
			reply.Body = []byte(err.Error())
		}
	default:
		reply.Status = wire.BadRequest
		reply.Body = []byte(fmt.Sprintf("unknown control command %d", ctl.Command))
	}
	return c.wc.Send(wire.TypeControl, wire.EncodeControl(reply))
}

func (s *Server) requestShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.shutdownC:
	default:
		close(s.shutdownC)
	}
}

func (s *Server) info() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s; transports:", Software)
	for _, l := range s.listeners {
		fmt.Fprintf(&b, " %s", l.ln.Display())
	}
	fmt.Fprintf(&b, "; clients: %d; targets: %d", len(s.clients), len(s.targets))
	return b.String()
}
