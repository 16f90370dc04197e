package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"kdsrv/internal/dbgport"
	"kdsrv/internal/haltcache"
	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/logx"
	"kdsrv/internal/readahead"
	"kdsrv/internal/wire"
)

// Bridge exposes a target opened on a kdsrv as a local KDCOM endpoint. It
// plays the target's end of the KD link layer toward one local debugger at
// a time (acknowledging, retransmitting and resynchronising locally) and
// exchanges only whole data packets with the server.
//
// A debugger may leave and another attach: the bridge keeps the target's
// current state (the state change it is stopped in) and gives it to the
// new debugger when it resynchronises.
type Bridge struct {
	c *Conn

	mu      sync.Mutex
	halted  bool
	lastSC  []byte
	dbg     *debugger // the attached debugger, if any
	onState func(wire.State)
	ra      *bridgeReadAhead // set by EnableReadAhead (readahead.go)
	cache   *haltcache.Cache // set by EnableCache

	detachOnce sync.Once
	detached   chan struct{} // closed when the server confirmed a Detach
	runDone    chan struct{} // closed when Run returns
}

// debugger is one attached local debugger: a KD link on its line, or the
// in-process end of the built-in commands' kd.Host (Bridge.Host).
type debugger struct {
	l      kd.Endpoint
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	epoch  uint64 // RESETs seen when the last state change went out
}

// NewBridge wraps a connection on which a target was opened.
func NewBridge(c *Conn) *Bridge {
	return &Bridge{c: c, detached: make(chan struct{}), runDone: make(chan struct{})}
}

// Detach releases the target on the server and waits (while Run is
// running) until the server confirms, so that another client can open the
// target as soon as this one is gone.
func (b *Bridge) Detach(ctx context.Context) error {
	if err := b.c.wc.Send(wire.TypeDetach, nil); err != nil {
		return err
	}
	select {
	case <-b.detached:
		return nil
	case <-b.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OnState sets a callback for the server's target-state notices.
func (b *Bridge) OnState(f func(wire.State)) {
	b.mu.Lock()
	b.onState = f
	b.mu.Unlock()
}

// Run carries packets from the server to the attached debugger until the
// connection ends or ctx is cancelled (which closes the connection). It
// returns nil after a clean close by either side.
func (b *Bridge) Run(ctx context.Context) error {
	defer close(b.runDone)
	defer func() {
		if ra := b.readAhead(); ra != nil {
			ra.stop() // a held read's timer
		}
	}()
	stop := closeOnDone(ctx, b.c.wc)
	defer stop()
	for {
		f, err := b.c.wc.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return nil // a clean close; Conn.Closed says why
			}
			return explain(b.c.srv, err)
		}
		switch f.Type {
		case wire.TypeDetached:
			b.detachOnce.Do(func() { close(b.detached) })
		case wire.TypeKD:
			pt, payload, err := wire.DecodeKD(f.Payload)
			if err != nil {
				return err
			}
			b.c.opts.Trace.Packet(kdtrace.HopServer, kdtrace.ToHost, kd.Packet{Type: kd.PacketType(pt), Payload: payload}, false)
			if ra := b.readAhead(); ra != nil {
				consumed, answer, hint, err := ra.fromServer(pt, payload)
				if err != nil {
					return err
				}
				if hint != nil {
					if err := b.sendKD(readahead.PacketType, hint); err != nil {
						return err
					}
				}
				if answer != nil {
					// The push answers the read the debugger is waiting
					// for: deliver it as the server's reply would be.
					b.c.opts.Trace.Note(kdtrace.HopDebugger, kdtrace.ToHost, "readahead-hit", "answered from a push the debugger was waiting for")
					pt, payload = uint16(kd.TypeStateManipulate), answer
				} else if consumed {
					continue
				}
			}
			if hc := b.haltCache(); hc != nil {
				hc.FromTarget(kd.PacketType(pt), payload)
			}
			if kd.PacketType(pt) == kd.TypeStateChange64 {
				// Kept as the stop the bridge gives the next debugger;
				// any other payload is used before the next Recv.
				payload = append([]byte(nil), payload...)
			}
			b.fromServer(kd.PacketType(pt), payload)
		case wire.TypeNotice:
			b.c.notice(f.Payload)
		case wire.TypeState:
			st, err := wire.DecodeState(f.Payload)
			if err != nil {
				continue
			}
			b.c.opts.Trace.Note(kdtrace.HopServer, kdtrace.ToHost, "state", fmt.Sprintf("%s: %s", st.State, st.Text))
			if st.State == wire.StateReconnected {
				// The target restarted (or its link was re-established and
				// the server synchronised again): the stop the bridge
				// kept belongs to the old picture. The next state change
				// from the server is the target's current one.
				b.mu.Lock()
				wasHalted := b.halted
				b.halted, b.lastSC = false, nil
				d := b.dbg
				b.mu.Unlock()
				if wasHalted && d != nil {
					// Its debugger believes the target stopped and waits
					// for answers a rebooted, running kernel never gives:
					// stop the new boot so that it gets its state change.
					if err := b.c.wc.Send(wire.TypeBreakIn, nil); err != nil {
						return err
					}
				}
			}
			if ra := b.readAhead(); ra != nil {
				ra.clear()
			}
			if hc := b.haltCache(); hc != nil {
				hc.Reset() // a new boot or a re-established link: nothing kept holds
			}
			b.mu.Lock()
			cb := b.onState
			b.mu.Unlock()
			if cb != nil {
				cb(st)
			} else {
				b.c.opts.Logger.Info("target state", "state", st.State.String(), "text", st.Text)
			}
		}
	}
}

func (b *Bridge) fromServer(pt kd.PacketType, payload []byte) {
	b.mu.Lock()
	if pt == kd.TypeStateChange64 {
		b.halted = true
		b.lastSC = payload
	}
	d := b.dbg
	b.mu.Unlock()
	if d != nil {
		var err error
		if pt == kd.TypeStateChange64 {
			err = d.sendStateChange(payload)
		} else {
			// Bounded: a debugger that never acknowledges (a pty nobody
			// opened) must not stall the server's packets; past the
			// budget the packet is handled as if no debugger were there.
			err = d.l.SendRetries(d.ctx, pt, payload, debuggerRetries)
		}
		if err == nil {
			return
		}
	}
	// No debugger to take it: answer what must not wait.
	switch pt {
	case kd.TypeFileIO:
		if f, err := kd.DecodeFileIO(payload); err == nil && f.API == kd.APICreateFile {
			r := kd.NewFileIORefusal(kd.APICreateFile)
			_ = b.sendKD(uint16(kd.TypeFileIO), r.Append(nil))
		}
	case kd.TypeDebugIO:
		if d, err := kd.DecodeDebugIO(payload); err == nil && d.API == kd.APIGetString {
			a := d.Answer(nil)
			_ = b.sendKD(uint16(kd.TypeDebugIO), a.Append(nil))
		}
	}
}

// debuggerRetries bounds how often the bridge re-sends a packet (other than
// a state change, which the bridge keeps for the next debugger anyway) to a
// local debugger that does not acknowledge it.
const debuggerRetries = 10

func (d *debugger) sendStateChange(sc []byte) error {
	epoch, err := d.l.SendEpoch(d.ctx, kd.TypeStateChange64, sc)
	if err == nil {
		d.mu.Lock()
		d.epoch = max(d.epoch, epoch)
		d.mu.Unlock()
	}
	return err
}

// Serve attaches a local debugger on conn (replacing the one attached
// before, if any) and carries its packets to the server until conn fails
// or ctx ends. It closes conn.
func (b *Bridge) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	dctx, cancel := context.WithCancel(ctx)
	var lcfg kd.Config
	if tr := b.c.opts.Trace; tr != nil {
		lcfg.Trace, lcfg.Event, lcfg.Noise = tr.LinkHooks(kdtrace.HopDebugger, false)
		tr.Note(kdtrace.HopDebugger, 0, "link", "debugger attached")
		defer tr.Note(kdtrace.HopDebugger, 0, "link", "debugger detached")
	}
	return b.serve(dctx, cancel, kd.NewTargetLink(conn, lcfg))
}

// serve carries the packets of the debugger at the far end of l to the
// server until l fails or ctx ends (cancel ends ctx). It closes l.
func (b *Bridge) serve(dctx context.Context, cancel context.CancelFunc, l kd.Endpoint) error {
	d := &debugger{l: l, ctx: dctx, cancel: cancel}
	defer d.l.Close()
	defer cancel()
	b.mu.Lock()
	old := b.dbg
	b.dbg = d
	b.mu.Unlock()
	if old != nil {
		old.cancel()
		old.l.Close()
	}
	defer func() {
		b.mu.Lock()
		if b.dbg == d {
			b.dbg = nil
		}
		b.mu.Unlock()
	}()
	for {
		m, err := d.l.Recv(dctx)
		if err != nil {
			if dctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, kd.ErrClosed) {
				return nil
			}
			return err
		}
		if err := b.fromDebugger(d, m); err != nil {
			return err
		}
		if m.Kind == kd.MsgPacket && b.haltCache() == nil && b.readAhead() == nil {
			// Forwarded (copied into a frame) and kept by nobody: the
			// link may reuse the memory.
			if r, ok := d.l.(interface{ Recycle([]byte) }); ok {
				r.Recycle(m.Packet.Payload)
			}
		}
	}
}

// Halted reports whether the target was stopped when the bridge last heard
// of it.
func (b *Bridge) Halted() bool {
	halted, _ := b.state()
	return halted
}

func (b *Bridge) state() (bool, []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.halted, b.lastSC
}

func (b *Bridge) fromDebugger(d *debugger, m kd.Message) error {
	switch m.Kind {
	case kd.MsgBreakIn:
		if halted, sc := b.state(); halted && sc != nil {
			// Already stopped: give this debugger the stop again.
			return ignoreGone(d.sendStateChange(sc))
		}
		b.c.opts.Trace.Note(kdtrace.HopServer, kdtrace.ToTarget, "break-in", "")
		return b.c.wc.Send(wire.TypeBreakIn, nil)
	case kd.MsgReset:
		if hc := b.haltCache(); hc != nil {
			// The debugger resynchronised: start the cache afresh. The
			// target is still stopped where the bridge knows it is, so
			// the cache may collect again for this stop.
			hc.Reset()
			if halted, sc := b.state(); halted && sc != nil {
				hc.FromTarget(kd.TypeStateChange64, sc)
			}
		}
		d.mu.Lock()
		stale := m.ResetSeq <= d.epoch
		d.mu.Unlock()
		if halted, sc := b.state(); halted && sc != nil && !stale {
			return ignoreGone(d.sendStateChange(sc))
		}
	case kd.MsgResend:
		if halted, sc := b.state(); halted && sc != nil {
			return ignoreGone(d.sendStateChange(sc))
		}
	case kd.MsgPacket:
		p := m.Packet
		if kd.Resumes(p.Type, p.Payload) {
			b.mu.Lock()
			b.halted, b.lastSC = false, nil
			b.mu.Unlock()
		}
		if hc := b.haltCache(); hc != nil {
			if reply, hit := hc.Request(p.Type, p.Payload); hit {
				b.c.opts.Trace.Note(kdtrace.HopDebugger, kdtrace.ToHost, "cache-hit", "answered from the halted-target cache")
				return ignoreGone(d.l.Send(d.ctx, kd.TypeStateManipulate, reply))
			}
		}
		if ra := b.readAhead(); ra != nil {
			reply, hint, hold := ra.fromDebugger(p)
			if reply != nil {
				b.c.opts.Trace.Note(kdtrace.HopDebugger, kdtrace.ToHost, "readahead-hit", "answered from data kdsrv read ahead")
				if err := b.sendKD(readahead.PacketType, hint); err != nil {
					return err
				}
				return ignoreGone(d.l.Send(d.ctx, kd.TypeStateManipulate, reply))
			}
			if hold {
				// The push with its data is on its way; the server gets
				// the read only if it does not come (armHold).
				req := append([]byte(nil), p.Payload...)
				ra.armHold(func() { _ = b.sendKD(uint16(kd.TypeStateManipulate), req) })
				return nil
			}
		}
		return b.sendKD(uint16(p.Type), p.Payload)
	}
	return nil
}

// sendKD sends a KD packet to the server, tracing it.
func (b *Bridge) sendKD(pt uint16, payload []byte) error {
	b.c.opts.Trace.Packet(kdtrace.HopServer, kdtrace.ToTarget, kd.Packet{Type: kd.PacketType(pt), Payload: payload}, false)
	return b.c.wc.SendKD(pt, payload)
}

// ignoreGone drops errors that only mean this debugger went away (its
// link closed or it was replaced); anything else ends the debugger's
// session.
func ignoreGone(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, kd.ErrClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// Listen accepts debuggers on ln one after another, with the policy of a
// debugger port (package dbgport): a new one replaces the one attached
// before (it reconnected), and a failing Accept is retried after a short
// back-off. It closes ln; it returns nil when ctx ends, and an error when
// ln is closed under it.
//
// logger (nil: none) gets a line when a debugger attaches or detaches.
func (b *Bridge) Listen(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	logger = logx.OrDiscard(logger)
	return dbgport.Serve(ctx, ln, "bridge "+ln.Addr().String(), logger, func(ctx context.Context, c net.Conn, peer string) {
		logger.Info("debugger attached", "peer", peer)
		if err := b.Serve(ctx, c); err != nil {
			logger.Info("debugger detached", "peer", peer, logx.Err(err))
			return
		}
		logger.Info("debugger detached", "peer", peer)
	})
}

// Host attaches an in-process debugger (a kd.Host on an in-process link,
// inprocPair: packets are handed over as messages, without KD framing or
// ACKs) to the bridge: the built-in commands use it. stop detaches it.
func (b *Bridge) Host(ctx context.Context, opts kd.HostOptions) (h *kd.Host, stop func()) {
	tr := b.c.opts.Trace
	tr.Note(kdtrace.HopDebugger, 0, "link", "debugger attached (in-process)")
	he, te := inprocPair(tr)
	done := make(chan struct{})
	dctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		_ = b.serve(dctx, cancel, te)
		tr.Note(kdtrace.HopDebugger, 0, "link", "debugger detached")
	}()
	return kd.NewHost(he, opts), func() {
		he.Close()
		<-done
	}
}

// EnableCache turns on the halted-target cache (package haltcache): reads
// the debugger repeats while the target is halted are answered by the
// bridge without a round trip to the server. Call it before Run.
func (b *Bridge) EnableCache() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cache == nil {
		b.cache = haltcache.New(0)
	}
}

// CacheStats returns the halted-target cache's counters (zero when the
// cache is off).
func (b *Bridge) CacheStats() haltcache.Stats {
	if hc := b.haltCache(); hc != nil {
		return hc.Stats()
	}
	return haltcache.Stats{}
}

func (b *Bridge) haltCache() *haltcache.Cache {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cache
}
