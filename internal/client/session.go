// Package client is the smart-client side of kdsrv: it connects to a KD
// connection server, opens a target, and either bridges it to a local
// debugger as a KDCOM endpoint (playing the target's end of the KD link
// layer toward that debugger) or runs built-in commands against it.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"kdsrv/internal/kdtrace"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
	"kdsrv/internal/wire"
)

// Software is what the client reports in the handshake.
const Software = "kdclient/0.1"

// Options configure a connection to a server.
type Options struct {
	// HandshakeTimeout bounds each handshake step (default 10s).
	HandshakeTimeout time.Duration
	// KeepAlive is the wire ping interval (default 15s).
	KeepAlive time.Duration
	// TakeOver opens the target even if another client owns it.
	TakeOver bool
	// Logger receives notices (default slog.Default(), standard error).
	Logger *slog.Logger
	// Trace, if set, receives a decoded trace of the bridge's traffic with
	// the server (bridge-server hop) and with local debuggers
	// (debugger-bridge hop).
	Trace *kdtrace.Tracer
	// Dial replaces transport.Dial (tests, benchmarks).
	Dial func(ctx context.Context, t *spec.Transport) (net.Conn, error)
	// Keys caches password keys across dials (a bridge that reconnects
	// derives once per server). Nil: a cache per Dial.
	Keys *wire.KeyCache
	// OnNotice is called with every Notice frame the server sends: a KD
	// packet it refused or dropped, the options of a shared target link.
	// The session goes on. Default: the notice goes to Logger.
	OnNotice func(wire.Notice)
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Dial == nil {
		o.Dial = transport.Dial
	}
	if o.Keys == nil {
		o.Keys = wire.NewKeyCache()
	}
	if o.OnNotice == nil {
		logger := o.Logger
		o.OnNotice = func(n wire.Notice) { logger.Info("notice from kdsrv", "code", n.Code.String(), "text", n.Text) }
	}
}

// notice hands a Notice frame to Options.OnNotice.
func (c *Conn) notice(payload []byte) {
	if n, err := wire.DecodeNotice(payload); err == nil {
		c.opts.OnNotice(n)
	}
}

// Conn is an authenticated connection to a kdsrv.
type Conn struct {
	wc   *wire.Conn
	opts Options
	srv  *spec.Transport
}

// Dial connects to the server described by t and runs the handshake.
func Dial(ctx context.Context, t *spec.Transport, opts Options) (*Conn, error) {
	opts.setDefaults()
	nc, err := opts.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	binding, err := transport.Binding(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	wc, err := wire.Client(ctx, nc, wire.Config{
		Password:         t.Password,
		Binding:          binding,
		HandshakeTimeout: opts.HandshakeTimeout,
		KeepAlive:        opts.KeepAlive,
		Software:         Software,
		// The key depends on the server's salt, so it is derived during
		// the handshake (once per server and password with a shared
		// cache; the server waits HandshakeTimeout for our proof).
		Keys: opts.Keys,
	})
	if err != nil {
		nc.Close()
		return nil, explainPlainToTLS(t, explain(t, err))
	}
	if t.Password != "" && !wc.Authenticated() {
		// The server did not ask for the password, so it never proved it
		// knows it: it may not be the kdsrv the user means. Stop before
		// anything (such as a KDNET key in trans=) is sent to it.
		wc.Close()
		return nil, fmt.Errorf("kdsrv at %s did not ask for the password, so it could not prove it knows it; refusing to go on (if that server really has no password, remove password= from server=@{...})", t)
	}
	return &Conn{wc: wc, opts: opts, srv: t}, nil
}

// explainPlainToTLS adds a hint to a plain (tcp, npipe) handshake that the
// server cut short: an ssl/spipe server drops clients that do not speak
// TLS without a word.
func explainPlainToTLS(t *spec.Transport, err error) error {
	secure := map[spec.Proto]spec.Proto{spec.TCP: spec.SSL, spec.NPipe: spec.SPipe}[t.Proto]
	if secure == "" || !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("%w (if that server runs %s, it drops clients that do not speak TLS: connect with server=@{%s:proto=tls1,...})", err, secure, secure)
}

// Errors of Dial when the server refuses access; the program says how to
// give a password (kdclient: -password-file, KDSRV_PASSWORD, the terminal).
var (
	// ErrPasswordRequired: the server requires a password and none was given.
	ErrPasswordRequired = errors.New("access denied: the server requires a password")
	// ErrPasswordRefused: the server did not accept the password.
	ErrPasswordRefused = errors.New("access denied: the password was not accepted (or the server could not prove it knows it)")
)

// explain turns wire errors into messages that say what to do.
func explain(t *spec.Transport, err error) error {
	code, ok := wire.ErrorCode(err)
	if !ok {
		return fmt.Errorf("kdsrv at %s: %w", t, err)
	}
	switch code {
	case wire.AccessDenied:
		if t.Password == "" {
			return fmt.Errorf("kdsrv at %s: %w", t, ErrPasswordRequired)
		}
		return fmt.Errorf("kdsrv at %s: %w", t, ErrPasswordRefused)
	case wire.VersionMismatch:
		return fmt.Errorf("kdsrv at %s: incompatible protocol versions (%v); upgrade kdclient or kdsrv so both speak the same version", t, err)
	case wire.InUse:
		return fmt.Errorf("%v", err)
	case wire.NotAllowed:
		return fmt.Errorf("the server refused the target: %v", err)
	case wire.TargetUnavailable:
		return fmt.Errorf("the target link is not available: %v", err)
	case wire.ServerShutdown:
		return fmt.Errorf("kdsrv at %s is shutting down", t)
	}
	return fmt.Errorf("kdsrv at %s: %w", t, err)
}

// Wire returns the underlying wire connection.
func (c *Conn) Wire() *wire.Conn { return c.wc }

// Closed describes a clean close by the server, for messages.
func (c *Conn) Closed() error {
	if c.wc.ByeReason() == wire.ServerShutdown {
		return fmt.Errorf("kdsrv at %s is shutting down", c.srv)
	}
	return errors.New("the server closed the connection")
}

// Close ends the connection cleanly.
func (c *Conn) Close() error { return c.wc.Close() }

// Open asks the server to open a target and waits for its answer.
func (c *Conn) Open(ctx context.Context, t *spec.Target) (wire.Opened, error) {
	return c.open(ctx, t, wire.Open{Target: t.Canonical(), TakeOver: c.opts.TakeOver})
}

// Watch asks the server to open a target's console only (see Console).
func (c *Conn) Watch(ctx context.Context, t *spec.Target) (wire.Opened, error) {
	return c.open(ctx, t, wire.Open{Target: t.Canonical(), Watch: true})
}

func (c *Conn) open(ctx context.Context, t *spec.Target, o wire.Open) (opened wire.Opened, err error) {
	err = c.exchange(ctx, fmt.Sprintf("opening %s", t), wire.TypeOpen, wire.EncodeOpen(o), func(f wire.Frame) (bool, error) {
		switch f.Type {
		case wire.TypeOpened:
			var err error
			opened, err = wire.DecodeOpened(f.Payload)
			return true, err
		case wire.TypeState:
			return false, nil
		case wire.TypeNotice:
			c.notice(f.Payload)
			return false, nil
		}
		return true, fmt.Errorf("kdsrv sent %s while the target was being opened", f.Type)
	})
	return opened, err
}

// Control sends a control request and waits for its reply, before any
// target is opened (or with no bridge running).
func (c *Conn) Control(ctx context.Context, cmd wire.Command, body []byte) (reply wire.Control, err error) {
	err = c.exchange(ctx, "", wire.TypeControl, wire.EncodeControl(wire.Control{ID: 1, Command: cmd, Body: body}), func(f wire.Frame) (bool, error) {
		switch f.Type {
		case wire.TypeNotice:
			c.notice(f.Payload) // e.g. the options of a shared link, right after Opened
		case wire.TypeControl:
			var err error
			reply, err = wire.DecodeControl(f.Payload)
			if err == nil {
				reply.Body = append([]byte(nil), reply.Body...)
			}
			return true, err
		}
		return false, nil
	})
	return reply, err
}

// exchange sends one frame and hands the frames that come back to handle
// until it says it is done (or fails), the connection fails or ctx ends
// (which closes the connection). what, if set, names the request in the
// error when ctx ended.
func (c *Conn) exchange(ctx context.Context, what string, t wire.Type, payload []byte, handle func(wire.Frame) (done bool, err error)) error {
	if err := c.wc.Send(t, payload); err != nil {
		return err
	}
	stop := closeOnDone(ctx, c.wc)
	defer stop()
	for {
		f, err := c.wc.Recv()
		if err != nil {
			if what != "" && ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
			return explain(c.srv, err)
		}
		if done, err := handle(f); done || err != nil {
			return err
		}
	}
}

// closeOnDone closes wc if ctx ends before stop is called.
func closeOnDone(ctx context.Context, wc *wire.Conn) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			_ = wc.Close()
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// ErrClosed is returned after the session ended normally.
var ErrClosed = errors.New("kdclient: session closed")
