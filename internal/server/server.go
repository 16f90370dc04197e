// Package server is the KD connection server: it accepts smart clients on
// any number of transports, authenticates them, opens the kernel debug
// links they ask for (within the operator's allow-list), and runs the KD
// link layer toward each target itself, so that only whole KD data packets
// cross the network. A target link outlives the client that opened it: the
// next client that opens the same target gets its current state.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/transport"
	"kdsrv/internal/wire"
)

// Software is what the server reports in the handshake.
const Software = "kdsrv/0.1"

// Config configures a Server. Zero fields take the defaults noted.
type Config struct {
	// Transports are the parsed -t values; each gets its own listener.
	Transports []*spec.Transport
	// Allow decides which target links clients may open (default: local
	// serial devices only).
	Allow *targetlink.AllowList
	// Getenv supplies _NT_DEBUG_* defaults for omitted trans= fields
	// (default os.Getenv).
	Getenv func(string) string
	// Listen carries settings that are not in the grammar (bind address).
	Listen transport.Options
	// HandshakeTimeout bounds each handshake step (default 10s).
	HandshakeTimeout time.Duration
	// KeepAlive is the wire ping interval (default 15s).
	KeepAlive time.Duration
	// TargetTimeout is how long a packet for the target may wait for the
	// target's acknowledgement before the client is told that the target
	// is not responding (default 5s). Sending goes on meanwhile.
	TargetTimeout time.Duration
	// SendBudget is how long a packet for the target may wait, for the
	// synchronisation and then for the target's acknowledgement, before it
	// is dropped and its sender told with a Notice (default 3 ×
	// TargetTimeout).
	SendBudget time.Duration
	// AttachInterval is the pause between break-in/RESET attempts while
	// synchronising with a KDCOM target, and AttachSlowInterval the pace of
	// the break-ins once the RESETs are used up (defaults 1s and 5s; see
	// kd.AttachPolicy). Tests shorten them.
	AttachInterval, AttachSlowInterval time.Duration
	// OpenTimeout bounds opening a target link (default 10s).
	OpenTimeout time.Duration
	// AllowShutdown lets clients stop the server (kdclient ... endpsrv).
	AllowShutdown bool
	// OpenTarget opens a target and returns the host end of its KD link
	// (default targetlink.Open with KDNETBindHost and Logger); tests
	// replace it.
	OpenTarget func(ctx context.Context, t *spec.Target, allow *targetlink.AllowList) (kd.Endpoint, error)
	// TargetKey names a target for "in use" checks (default targetlink.Key).
	TargetKey func(t *spec.Target) (string, error)
	// KDNETBindHost is the local address KDNET target links listen on;
	// empty means every interface, as a Windows debugger host does (the
	// target is configured with one of this machine's addresses).
	KDNETBindHost string
	// Logger receives operational messages: one info line per client,
	// session and target event, warnings for trouble (default
	// slog.Default()).
	Logger *slog.Logger
	// Metrics turns on the Prometheus metrics that MetricsHandler serves.
	Metrics bool
	// Trace, if set, receives a decoded trace of every target link
	// (server-target hop) and client connection (bridge-server hop).
	Trace *kdtrace.Tracer
	// Ready is called once per listener when it accepts connections, with
	// its display form (e.g. "tcp:port=53:60").
	Ready func(display string)
	// Limits throttles password guessing and caps unauthenticated
	// connections (defaults in Limits).
	Limits Limits
	// TakeoverAny lets a client take a target over (-takeover) whatever its
	// transport; by default the taker's transport must have every
	// protection the owner's had (a password, TLS).
	TakeoverAny bool
	// Now is the clock of the limits (default time.Now); tests replace it.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	orPositive(&c.HandshakeTimeout, wire.DefaultHandshakeTimeout)
	orDefault(&c.KeepAlive, wire.DefaultKeepAlive) // negative: no keep-alive
	orPositive(&c.TargetTimeout, 5*time.Second)
	orPositive(&c.SendBudget, 3*c.TargetTimeout)
	orPositive(&c.OpenTimeout, 10*time.Second)
	if c.TargetKey == nil {
		c.TargetKey = targetlink.Key
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits.setDefaults()
	// After Logger: KDNET links log through it.
	if c.OpenTarget == nil {
		opts := targetlink.Options{KDNETBindHost: c.KDNETBindHost, Logger: c.Logger}
		c.OpenTarget = func(ctx context.Context, t *spec.Target, allow *targetlink.AllowList) (kd.Endpoint, error) {
			o := opts
			o.KD = linkHooks(ctx) // the target's trace, metrics and console hooks
			return targetlink.Open(ctx, t, allow, o)
		}
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("kdsrv: server closed")

// Server is a KD connection server.
type Server struct {
	cfg Config

	mu        sync.Mutex
	listeners []*listener
	clients   map[*client]struct{}
	targets   map[string]*target
	closed    bool
	nextSess  atomic.Uint32
	nextTgt   atomic.Uint32
	shutdownC chan struct{} // closed when a client asked for shutdown
	metrics   *metrics      // nil unless Config.Metrics

	wg sync.WaitGroup // accept loops, clients, targets

	// salt is this server's password salt, announced to every client;
	// keys holds the password keys derived from it at start-up.
	salt []byte
	keys *wire.KeyCache

	guard    *guard        // password throttle and pre-authentication caps
	logLim   *logLimiter   // rate of refusal and failure log lines
	refusers chan struct{} // bounds the goroutines that turn connections away
	done     chan struct{} // closed by Shutdown
}

// maxRefusers bounds the goroutines writing a refusal (wire.Refuse) at any
// one time; beyond it, a connection to turn away is simply closed.
const maxRefusers = 64

type listener struct {
	ln transport.Listener
	t  *spec.Transport
}

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if len(cfg.Transports) == 0 {
		return nil, errors.New("kdsrv: no transport given: add at least one -t (for example -t tcp:port=5005)")
	}
	// A fresh salt per server process: a dictionary precomputed against
	// one server is useless against another (docs/protocol.md).
	salt, err := wire.NewSalt()
	if err != nil {
		return nil, err
	}
	keys := wire.NewKeyCache()
	for _, t := range cfg.Transports {
		// The password key is slow to derive by design: do it now, not
		// under the first client's handshake deadline.
		if err := keys.Prepare(t.Password, salt); err != nil {
			return nil, err
		}
	}
	if cfg.Listen.TLSHandshakeTimeout == 0 {
		cfg.Listen.TLSHandshakeTimeout = cfg.HandshakeTimeout
	}
	if cfg.Listen.COM == nil {
		// The com listeners of this server share their serial ports.
		cfg.Listen.COM = &transport.COMPorts{}
	}
	if cfg.Allow == nil {
		a, err := targetlink.NewAllowList(nil, true)
		if err != nil {
			return nil, err
		}
		cfg.Allow = a
	}
	s := &Server{
		cfg:       cfg,
		clients:   make(map[*client]struct{}),
		targets:   make(map[string]*target),
		shutdownC: make(chan struct{}),
		salt:      salt,
		keys:      keys,
		guard:     newGuard(cfg.Limits, cfg.Now),
		logLim:    newLogLimiter(cfg.Limits.LogPerSecond, cfg.Now),
		refusers:  make(chan struct{}, maxRefusers),
		done:      make(chan struct{}),
	}
	if cfg.Metrics {
		s.metrics = newMetrics(s)
	}
	return s, nil
}

// Listen opens every transport's listener. Nothing is served until Serve.
// On error, listeners already opened are closed.
func (s *Server) Listen(ctx context.Context) error {
	for _, t := range s.cfg.Transports {
		ln, err := transport.Listen(ctx, t, s.cfg.Listen)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.mu.Lock()
		s.listeners = append(s.listeners, &listener{ln: ln, t: t})
		s.mu.Unlock()
	}
	return nil
}

// Displays returns the display form of every open listener, in -t order.
func (s *Server) Displays() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.ln.Display()
	}
	return out
}

// Addrs returns the bound address of every listener, in -t order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.ln.Addr()
	}
	return out
}

// Serve accepts clients on every listener until Shutdown; it returns
// ErrServerClosed then. A listener that fails for good (for example a
// reverse connection that could not be made) ends Serve with its error.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	lns := append([]*listener(nil), s.listeners...)
	// Added under the lock that Shutdown takes to set closed, so that no
	// Add can race with Shutdown's Wait.
	s.wg.Add(len(lns))
	s.mu.Unlock()
	if len(lns) == 0 {
		return errors.New("kdsrv: Serve called before Listen")
	}
	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() {
			defer s.wg.Done()
			errc <- s.acceptLoop(l)
		}()
		if s.cfg.Ready != nil {
			s.cfg.Ready(l.ln.Display())
		}
	}
	var first error
	for range lns {
		err := <-errc
		if first == nil && err != nil && !s.isClosed() {
			first = err
			s.closeListeners() // one listener failed for good: stop the rest
		}
	}
	if first != nil {
		return first
	}
	return ErrServerClosed
}

// ShutdownRequested is closed when a client asked the server to stop
// (endpsrv, allowed by Config.AllowShutdown).
func (s *Server) ShutdownRequested() <-chan struct{} { return s.shutdownC }

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) acceptLoop(l *listener) error {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Accept errors such as EMFILE and ENFILE (out of file
				// descriptors): back off like net/http, so that the loop
				// does not spin while connections wait in the backlog.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.warn("cannot accept connections; retrying", "transport", l.ln.Display(), "err", err, "retry_in", delay.String(),
					"hint", "out of file descriptors? raise the limit (ulimit -n) or lower -max-preauth")
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
				}
				continue
			}
			return fmt.Errorf("%s: %w", l.ln.Display(), err)
		}
		delay = 0
		s.startClient(c, l)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	lns := s.listeners
	s.mu.Unlock()
	for _, l := range lns {
		_ = l.ln.Close()
	}
}

// Shutdown stops accepting, ends every client session cleanly (Bye with
// ServerShutdown), closes every target link and waits for all goroutines,
// or until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
	} else {
		s.closed = true
		close(s.done)
		clients, targets := len(s.clients), len(s.targets)
		s.mu.Unlock()
		s.cfg.Logger.Info("server shutting down", "clients", clients, "targets", targets)
	}
	s.closeListeners()
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	targets := make([]*target, 0, len(s.targets))
	for _, t := range s.targets {
		targets = append(targets, t)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.stop(wire.ServerShutdown)
	}
	for _, t := range targets {
		t.close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kdsrv: shutdown did not finish: %w", ctx.Err())
	}
}

// Stats is a snapshot of the server's activity.
type Stats struct {
	Clients int // connected clients
	Targets int // open target links
}

// Stats returns current counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Clients: len(s.clients), Targets: len(s.targets)}
}

// closeQuietly closes c, ignoring errors (used on failed handshakes).
func closeQuietly(c io.Closer) { _ = c.Close() }
