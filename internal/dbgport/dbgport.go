// Package dbgport serves a local debugger port: the unix socket or TCP
// port (a Windows named pipe or a pty are served by their owners through
// Serve too) that an unmodified debugger — WinDbg/kd over com:ipport or a
// pipe, radare2 winkd:// — connects to, as it would to a VM's serial port.
// kdtarget serves its simulated kernel on one, the kdclient bridge a
// remote target.
//
// One policy holds for every port:
//
//   - One debugger at a time. A new connection replaces the current one:
//     the old connection is closed and its handler has returned before the
//     new one is served, so a debugger that restarts or reconnects is never
//     locked out.
//   - Stale unix sockets. A socket file left behind by a process that died
//     is replaced; a socket that another live process serves is refused
//     (it is not stolen), and any other kind of file is never touched. The
//     socket file is removed when the listener closes.
//   - Accept back-off. A failing Accept (out of file descriptors and the
//     like) is retried after a pause that doubles from 5ms to 1s, as
//     net/http does, instead of ending the port.
//
// New kinds of port (a serial device) plug in by giving Serve their own
// net.Listener.
package dbgport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/logx"
)

// Back-off bounds of Serve after a failed Accept.
const (
	MinBackoff = 5 * time.Millisecond
	MaxBackoff = time.Second
)

// probeTimeout bounds the dial that tells a live unix socket from a stale
// one.
const probeTimeout = time.Second

// Listen opens a debugger port on network "unix" (a socket path) or "tcp"
// (host:port), applying the stale-socket policy of the package. The
// caller closes the listener (Serve does when ctx ends).
func Listen(ctx context.Context, network, address string) (net.Listener, error) {
	switch network {
	case "unix":
		if err := clearStaleSocket(address); err != nil {
			return nil, err
		}
	case "tcp":
	default:
		return nil, fmt.Errorf("%s:%s: unknown kind of debugger port; use unix:PATH or tcp:HOST:PORT", network, address)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("listen %s:%s: %w (is another program using it?)", network, address, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	return ln, nil
}

// clearStaleSocket removes a socket file at path that nobody serves.
func clearStaleSocket(path string) error {
	if strings.HasPrefix(path, "@") {
		return nil // Linux abstract socket: no file
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen unix:%s: cannot check the existing file: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen unix:%s: a %s with that name exists and is not a socket; remove it or choose another path",
			path, describeMode(fi.Mode()))
	}
	if c, err := net.DialTimeout("unix", path, probeTimeout); err == nil {
		c.Close()
		return fmt.Errorf("listen unix:%s: another process is serving that socket; stop it or choose another path", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen unix:%s: cannot remove the stale socket: %w", path, err)
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "file"
}

// Serve accepts debugger connections on ln until ctx ends and runs serve
// on each, one at a time: a new connection replaces the current one (its
// context is cancelled, its connection closed, and serve has returned
// before the new one starts). serve owns its connection. name says which
// port in log lines. Serve closes ln; it returns nil when ctx ends, and
// an error when ln is closed under it.
func Serve(ctx context.Context, ln net.Listener, name string, logger *slog.Logger, serve func(ctx context.Context, c net.Conn, peer string)) error {
	logger = logx.OrDiscard(logger)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	var cur *session
	defer func() {
		if cur != nil {
			cur.stop()
		}
	}()
	delay := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%s: the listener was closed: %w", name, err)
			}
			delay = min(max(2*delay, MinBackoff), MaxBackoff)
			logger.Warn("accept failed; retrying", "endpoint", name, logx.Err(err), "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		delay = 0
		peer := logx.Peer(c)
		if cur != nil && !cur.finished() {
			logger.Info("debugger connection replaces the previous one", "endpoint", name, "peer", peer, "previous_peer", cur.peer)
		}
		if cur != nil {
			cur.stop()
		}
		cur = start(ctx, c, peer, serve)
	}
}

// session is one debugger connection being served in the background.
type session struct {
	peer   string
	conn   net.Conn
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func start(ctx context.Context, c net.Conn, peer string, serve func(context.Context, net.Conn, string)) *session {
	sctx, cancel := context.WithCancel(ctx)
	s := &session{peer: peer, conn: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		serve(sctx, c, peer)
	}()
	return s
}

// finished reports whether the session's debugger already went away.
func (s *session) finished() bool { return isDone(s.done) }

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stop ends the session and waits for it.
func (s *session) stop() {
	s.once.Do(func() {
		s.cancel()
		s.conn.Close()
	})
	<-s.done
}
