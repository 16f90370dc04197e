package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/wire"
)

// consoleKeep is how much of a target's console (bytes on its line outside
// KD packets) the server keeps for watchers that connect later.
const consoleKeep = 64 << 10

// consoleBuf is a target link's console: the last consoleKeep bytes, and
// the watchers that receive new bytes as they arrive.
type consoleBuf struct {
	mu       sync.Mutex
	ring     []byte // at most consoleKeep bytes, oldest first
	watchers map[*consoleWatcher]struct{}
}

// consoleWatcher receives console bytes through a bounded queue, so that
// a slow watcher never holds up the target link: when its queue is full,
// bytes are dropped for it (and counted).
type consoleWatcher struct {
	ch      chan []byte
	dropped uint64 // under consoleBuf.mu
}

// consoleQueue bounds the chunks queued for one watcher.
const consoleQueue = 256

func (c *consoleBuf) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) >= consoleKeep {
		c.ring = append(c.ring[:0], b[len(b)-consoleKeep:]...)
	} else {
		if over := len(c.ring) + len(b) - consoleKeep; over > 0 {
			c.ring = c.ring[:copy(c.ring, c.ring[over:])]
		}
		c.ring = append(c.ring, b...)
	}
	if len(c.watchers) == 0 {
		return
	}
	chunk := append([]byte(nil), b...)
	for w := range c.watchers {
		select {
		case w.ch <- chunk:
		default:
			w.dropped += uint64(len(chunk))
		}
	}
}

// watch registers a watcher and returns the backlog (a copy of what is
// kept), in one step so that no byte is missed or seen twice.
func (c *consoleBuf) watch() (*consoleWatcher, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchers == nil {
		c.watchers = make(map[*consoleWatcher]struct{})
	}
	w := &consoleWatcher{ch: make(chan []byte, consoleQueue)}
	c.watchers[w] = struct{}{}
	return w, append([]byte(nil), c.ring...)
}

func (c *consoleBuf) unwatch(w *consoleWatcher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watchers, w)
}

func (t *target) consoleWrite(b []byte) { t.con.write(b) }

// watchState is a console watcher's side of a client connection.
type watchState struct {
	t    *target
	w    *consoleWatcher
	stop chan struct{} // closed to end the forwarder
	done chan struct{} // closed when the forwarder ended
}

// acquireWatch returns the open target for ts for a console watcher,
// opening the link if nobody has it open. A watcher owns nothing: the link
// is opened without an owner, and without the break-in and RESET a
// debugger's open makes (target.needAttach), so watching never disturbs
// the target.
func (s *Server) acquireWatch(ctx context.Context, ts *spec.Target) (*target, error) {
	t, _, err := s.findOrOpen(ctx, ts, func(t *target) {
		t.needAttach, t.attachReq = true, make(chan struct{}, 1)
	}, nil)
	return t, err
}

// watch serves an Open with the Watch flag: Opened, then the console
// backlog and live console bytes as Console frames, until the client
// detaches or leaves, or the target link ends.
func (c *client) watch(ts *spec.Target) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.OpenTimeout)
	defer cancel()
	t, err := c.s.acquireWatch(ctx, ts)
	if err != nil {
		var na *targetlink.NotAllowedError
		switch {
		case errors.As(err, &na), errors.Is(err, errKeyMismatch):
			return c.refuse(wire.NotAllowed, err.Error())
		default:
			return c.refuse(wire.TargetUnavailable, err.Error())
		}
	}
	w, backlog := t.con.watch()
	ws := &watchState{t: t, w: w, stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	c.watching = ws
	c.mu.Unlock()
	c.s.metrics.sessionOpened()
	sess := c.s.nextSess.Add(1)
	c.sess.Store(sess)
	if err := c.wc.Send(wire.TypeOpened, wire.EncodeOpened(wire.Opened{Session: sess, Info: t.describe()})); err != nil {
		return err
	}
	c.log().Info("console watch opened", t.attrs()...)
	c.s.wg.Add(1) // counted while this client's own goroutine is
	go func() {
		defer c.s.wg.Done()
		defer close(ws.done)
		c.forwardConsole(ws, backlog)
	}()
	return nil
}

func (c *client) forwardConsole(ws *watchState, backlog []byte) {
	send := func(b []byte) bool {
		for len(b) > 0 {
			n := min(len(b), wire.MaxPayload)
			if err := c.wc.Send(wire.TypeConsole, b[:n]); err != nil {
				return false
			}
			b = b[n:]
		}
		return true
	}
	if !send(backlog) {
		return
	}
	var reported uint64
	for {
		select {
		case b := <-ws.w.ch:
			if !send(b) {
				return
			}
			if d := ws.t.con.droppedFor(ws.w); d > reported {
				_ = c.wc.Send(wire.TypeNotice, wire.EncodeNotice(wire.Busy,
					fmt.Sprintf("%d console bytes of %s were dropped because this connection could not keep up", d-reported, ws.t.spec)))
				reported = d
			}
		case <-ws.stop:
			return
		case <-ws.t.ctx.Done():
			_ = c.wc.SendError(wire.TargetUnavailable, fmt.Sprintf("the link to target %s ended", ws.t.spec))
			c.stop(wire.TargetUnavailable)
			return
		}
	}
}

// unwatch ends a console watch, if any, and waits for its forwarder.
func (c *client) unwatch() {
	c.mu.Lock()
	ws := c.watching
	c.watching = nil
	c.mu.Unlock()
	if ws == nil {
		return
	}
	ws.t.con.unwatch(ws.w)
	close(ws.stop)
	<-ws.done
	c.s.metrics.sessionClosed()
}

func (c *consoleBuf) droppedFor(w *consoleWatcher) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return w.dropped
}

// consoleOnly says whether only console watchers have used the link so
// far: the server then neither breaks in nor resets the target.
func (t *target) consoleOnly() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.needAttach
}

// requestAttach asks the pump to synchronise with a target whose link a
// console watcher opened, now that a debugger uses it.
func (t *target) requestAttach() {
	t.mu.Lock()
	need := t.needAttach
	t.needAttach = false
	t.mu.Unlock()
	if need {
		select {
		case t.attachReq <- struct{}{}:
		default:
		}
	}
}
