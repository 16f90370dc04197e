package client

import (
	"context"
	"sync"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// DetachTimeout bounds how long Session.Close waits for the server to
// confirm a detach before it closes the connection anyway.
const DetachTimeout = 2 * time.Second

// SessionOptions tune what Start sets up before the bridge runs.
type SessionOptions struct {
	// ReadAhead asks the server to prefetch sequential memory reads
	// (Bridge.EnableReadAhead).
	ReadAhead bool
	// Cache turns on the halted-target cache (Bridge.EnableCache):
	// repeated reads of a halted target are answered locally.
	Cache bool
	// OnState, if set, receives the server's target state notices
	// (Bridge.OnState).
	OnState func(wire.State)
}

// Session is one client's use of a target on a kdsrv, from open to close:
// an authenticated connection, the target opened on it, and a Bridge
// running over it that serves local debuggers (Bridge.Serve,
// Bridge.Listen) or the built-in commands (Host). Close detaches first, so
// the server has released the target when Close returns and the next
// client can open it at once, then closes the connection. kdclient, the
// benchmarks and the tests all use it.
type Session struct {
	// Conn is the authenticated connection; the session owns it.
	Conn *Conn
	// Bridge runs over Conn until Close.
	Bridge *Bridge
	// Opened is the server's answer to the open.
	Opened wire.Opened

	stop    context.CancelFunc
	runDone chan struct{}
	runErr  error // set before runDone is closed
	once    sync.Once
}

// OpenSession dials the server of c, authenticates, opens the target of c
// and starts the bridge. ctx bounds the opening only.
func OpenSession(ctx context.Context, c *spec.Connect, opts Options, so SessionOptions) (*Session, error) {
	conn, err := Dial(ctx, c.Server, opts)
	if err != nil {
		return nil, err
	}
	return conn.Start(ctx, c.Trans, so)
}

// Start opens the target t on the connection and starts the bridge; the
// session owns c from then on (on error, c is closed). ctx bounds the
// opening only.
func (c *Conn) Start(ctx context.Context, t *spec.Target, so SessionOptions) (*Session, error) {
	opened, err := c.Open(ctx, t)
	if err != nil {
		c.Close()
		return nil, err
	}
	b := NewBridge(c)
	if so.OnState != nil {
		b.OnState(so.OnState)
	}
	if so.Cache {
		b.EnableCache()
	}
	if so.ReadAhead {
		if err := b.EnableReadAhead(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	// The bridge outlives ctx: it runs until Close, so that an
	// interrupted program can still detach cleanly.
	rctx, stop := context.WithCancel(context.Background())
	s := &Session{Conn: c, Bridge: b, Opened: opened, stop: stop, runDone: make(chan struct{})}
	go func() {
		s.runErr = b.Run(rctx)
		close(s.runDone)
	}()
	return s, nil
}

// Done is closed when the bridge stopped running: the connection ended
// (Err says why) or Close was called.
func (s *Session) Done() <-chan struct{} { return s.runDone }

// Err is the bridge's error once Done is closed: nil when the server
// closed the connection cleanly (Conn.Closed describes that) or Close was
// called.
func (s *Session) Err() error {
	select {
	case <-s.runDone:
		return s.runErr
	default:
		return nil
	}
}

// Host attaches an in-process debugger (kd.Host) to the bridge, for the
// built-in commands; stop detaches it. It ends with the session at the
// latest.
func (s *Session) Host(opts kd.HostOptions) (h *kd.Host, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.runDone:
			cancel()
		case <-ctx.Done():
		}
	}()
	h, stopHost := s.Bridge.Host(ctx, opts)
	return h, func() {
		stopHost()
		cancel()
	}
}

// Close detaches from the target (waiting up to DetachTimeout for the
// server's confirmation), stops the bridge and closes the connection. It
// is safe to call more than once.
func (s *Session) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DetachTimeout)
		_ = s.Bridge.Detach(ctx)
		cancel()
		s.stop()
		<-s.runDone
		s.Conn.Close()
	})
	return nil
}

// Abort drops the connection without detaching, as a crashed client
// would, and then releases what Close releases.
func (s *Session) Abort() {
	_ = s.Conn.Wire().NetConn().Close()
	s.Close()
}
