package server

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/wire"
)

// target is one open kernel debug link. The server plays the debugger's
// (host) end of the KD link layer on it; whole data packets go to and come
// from the client that owns the target.
type target struct {
	s    *Server
	key  string
	spec *spec.Target

	opening chan struct{} // closed when the link is open (or failed: err)
	err     error

	link io.Closer      // the target link (a byte stream, or a KDNET endpoint)
	kdl  Endpoint       // the KD link layer in the host role
	out  chan outPacket // packets for the target, in order
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{} // closed when both goroutines ended

	mu      sync.Mutex
	owner   *client
	halted  bool
	lastSC  []byte // payload of the state change the target is stopped in
	slow    bool   // the client was told the target is not responding
	opened  time.Time
	desc    string // how the link is described in logs
	readers sync.WaitGroup
	closed  bool
	ra      *readAhead // read-ahead, once a client enabled it (readahead.go)
}

// Endpoint is the host (debugger) end of a KD link layer: KDCOM over a
// byte stream (*kd.Link) or KDNET over UDP.
type Endpoint interface {
	Send(ctx context.Context, t kd.PacketType, payload []byte) error
	Recv(ctx context.Context) (kd.Message, error)
	SendBreakIn() error
	Close() error
	Stats() kd.Stats
}

type outPacket struct {
	typ     kd.PacketType
	payload []byte
}

// errKeyMismatch refuses a client whose KDNET key differs from the one the
// open link on that port authenticates with.
var errKeyMismatch = errors.New("the key does not match the one the KDNET link open on this port uses")

// inUseError says a target is owned by another client.
type inUseError struct {
	target string
	owner  string
	since  time.Time
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("target %s is in use by another client (%s, since %s); ask its user to detach, or open it with -takeover",
		e.target, e.owner, e.since.Format(time.RFC3339))
}

// acquireTarget returns the open target for ts owned by c, opening the link
// if nobody has it open.
func (s *Server) acquireTarget(ctx context.Context, c *client, ts *spec.Target, takeover bool) (*target, error) {
	key, err := s.cfg.TargetKey(ts)
	if err != nil {
		return nil, err
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("the server is shutting down")
		}
		t := s.targets[key]
		if t == nil {
			t = &target{s: s, key: key, spec: ts, opening: make(chan struct{}), owner: c}
			s.targets[key] = t
			s.wg.Add(1)
			s.mu.Unlock()
			if err := t.open(ctx); err != nil {
				if t.done == nil {
					s.wg.Done() // no goroutines were started to do it
				}
				return nil, err
			}
			return t, nil
		}
		s.mu.Unlock()
		select {
		case <-t.opening:
		case <-ctx.Done():
			return nil, fmt.Errorf("target %s: still being opened by another client: %w", ts, ctx.Err())
		}
		if t.err != nil {
			continue // that open failed and removed itself; try again
		}
		if ts.Kind == spec.TargetNet && subtle.ConstantTimeCompare([]byte(ts.Key), []byte(t.spec.Key)) != 1 {
			// The open KDNET link is authenticated with its own key: a
			// client must know it to share the link.
			return nil, fmt.Errorf("target %s: %w", ts, errKeyMismatch)
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			continue
		}
		old := t.owner
		if old != nil && old != c {
			if !takeover {
				t.mu.Unlock()
				return nil, &inUseError{target: ts.String(), owner: old.from, since: old.since}
			}
			t.owner = nil
			t.mu.Unlock()
			s.cfg.Logger.Printf("client %s takes target %s over from %s", c, ts, old)
			old.takenOver(t)
			t.mu.Lock()
		}
		t.owner = c
		t.mu.Unlock()
		return t, nil
	}
}

// takenOver tells a client that another one took its target.
func (c *client) takenOver(t *target) {
	c.mu.Lock()
	if c.tgt == t {
		c.tgt = nil
	}
	wc := c.wc
	c.mu.Unlock()
	if wc != nil {
		_ = wc.SendError(wire.InUse, "another client took this target over")
	}
	c.stop(wire.InUse)
}

// open opens the link and starts the target's goroutines. On failure the
// placeholder is removed and waiters see t.err.
func (t *target) open(ctx context.Context) error {
	s := t.s
	var desc fmt.Stringer
	var err error
	if t.spec.Kind == spec.TargetNet {
		var ep Endpoint
		ep, desc, err = openNet(ctx, t.spec, s.cfg.Allow, s.cfg.KDNETBindHost, s.cfg.Logger)
		if err == nil {
			t.kdl = ep
			t.link = ep
		}
	} else {
		var link targetlink.Link
		link, err = s.cfg.OpenTarget(ctx, t.spec, s.cfg.Allow)
		if err == nil {
			t.link = link
			t.kdl = kd.NewLink(link, kd.Config{Role: kd.RoleHost})
			desc = link
		}
	}
	if err != nil {
		t.err = err
		s.mu.Lock()
		delete(s.targets, t.key)
		s.mu.Unlock()
		close(t.opening)
		return err
	}
	t.desc = desc.String()
	t.out = make(chan outPacket, 64)
	t.ctx, t.stop = context.WithCancel(context.Background())
	t.done = make(chan struct{})
	t.opened = time.Now()
	t.readers.Add(2)
	go t.pump()
	go t.writer()
	go func() {
		t.readers.Wait()
		t.kdl.Close()
		close(t.done)
		s.mu.Lock()
		if s.targets[t.key] == t {
			delete(s.targets, t.key)
		}
		s.mu.Unlock()
		s.wg.Done()
	}()
	close(t.opening)
	s.cfg.Logger.Printf("target %s opened (%s)", t.spec, t.desc)
	if s.isClosed() {
		t.close() // Shutdown ran while the link was opening
		return errors.New("the server is shutting down")
	}
	return nil
}

func (t *target) describe() string {
	return fmt.Sprintf("%s (%s)", t.spec, t.desc)
}

// close stops the target's goroutines and closes the link.
func (t *target) close() {
	select {
	case <-t.opening:
	default:
		return // still opening: the opener owns it
	}
	if t.err != nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.stop()
	t.kdl.Close()
	<-t.done
}

// release drops c's ownership; the link stays open for the next client.
func (t *target) release(c *client) {
	t.mu.Lock()
	if t.owner == c {
		t.owner = nil
		t.s.cfg.Logger.Printf("client %s released target %s", c, t.spec)
	}
	t.mu.Unlock()
	t.releaseReadAhead(c)
}

func (t *target) ownerClient() *client {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.owner
}

// pump delivers what the target sends to the owning client, and answers
// what must not wait when nobody owns the target.
func (t *target) pump() {
	defer t.readers.Done()
	defer t.stop()
	heard := false // a target's first packet always carries the sync bit
	for {
		m, err := t.kdl.Recv(t.ctx)
		if err != nil {
			if t.ctx.Err() == nil {
				t.lost(err)
			}
			return
		}
		switch m.Kind {
		case kd.MsgSync:
			// The target restarted its id streams (reboot or reset);
			// its very first packet always carries the sync bit.
			t.targetEvent()
			if c := t.ownerClient(); c != nil && heard {
				c.sendState(wire.StateReconnected, "the target restarted its debug link")
			}
		case kd.MsgPacket:
			heard = true
			t.fromTarget(m.Packet)
		}
	}
}

func (t *target) fromTarget(p kd.Packet) {
	if t.raFromTarget(p) {
		return // the reply to the server's own prefetch
	}
	t.mu.Lock()
	if p.Type == kd.TypeStateChange64 {
		t.halted = true
		t.lastSC = p.Payload
	}
	owner := t.owner
	t.mu.Unlock()
	if owner != nil {
		if err := owner.sendKD(uint16(p.Type), p.Payload); err == nil {
			return
		}
	}
	// Nobody to hand it to: keep the target from stalling.
	switch p.Type {
	case kd.TypeFileIO:
		if f, err := kd.DecodeFileIO(p.Payload); err == nil && f.API == kd.APICreateFile {
			r := kd.NewFileIORefusal(kd.APICreateFile)
			t.enqueue(kd.TypeFileIO, r.Append(nil))
		}
	case kd.TypeDebugIO:
		if d, err := kd.DecodeDebugIO(p.Payload); err == nil && d.API == kd.APIGetString {
			a := d.Answer(nil)
			t.enqueue(kd.TypeDebugIO, a.Append(nil))
		}
	}
}

// fromClient queues a packet from the owning client for the target.
func (t *target) fromClient(c *client, pt uint16, payload []byte) error {
	if t.ownerClient() != c {
		return nil // taken over meanwhile
	}
	if ra := t.readAheadFor(c); ra != nil {
		return ra.fromClient(c, pt, payload)
	}
	typ := kd.PacketType(pt)
	if typ.IsControl() || typ >= kd.TypeMax || len(payload) > kd.MaxPayload {
		return c.fail(wire.BadRequest, fmt.Sprintf("invalid KD packet (type %d, %d bytes)", pt, len(payload)))
	}
	t.enqueue(typ, append([]byte(nil), payload...))
	return nil
}

func (t *target) enqueue(typ kd.PacketType, payload []byte) {
	select {
	case t.out <- outPacket{typ, payload}:
	case <-t.ctx.Done():
	}
}

// writer sends queued packets to the target one at a time. A packet that
// is not acknowledged within TargetTimeout makes the client hear that the
// target is not responding; sending goes on until it is acknowledged.
func (t *target) writer() {
	defer t.readers.Done()
	for {
		var p outPacket
		select {
		case p = <-t.out:
		case <-t.ctx.Done():
			return
		}
		for {
			ctx, cancel := context.WithTimeout(t.ctx, t.s.cfg.TargetTimeout)
			err := t.kdl.Send(ctx, p.typ, p.payload)
			cancel()
			if err == nil {
				break
			}
			if t.ctx.Err() != nil {
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return // the link failed; pump reports it
			}
			t.setSlow(true)
		}
		t.setSlow(false)
		if p.typ == kd.TypeStateManipulate && len(p.payload) >= 4 {
			switch kd.APINumber(binary.LittleEndian.Uint32(p.payload)) {
			case kd.APIContinue, kd.APIContinue2, kd.APIReboot:
				t.mu.Lock()
				t.halted = false
				t.lastSC = nil
				t.mu.Unlock()
			}
		}
	}
}

func (t *target) setSlow(slow bool) {
	t.mu.Lock()
	changed := t.slow != slow
	t.slow = slow
	owner := t.owner
	t.mu.Unlock()
	if !changed || owner == nil {
		return
	}
	if slow {
		owner.sendState(wire.StateNotResponding, fmt.Sprintf("target %s does not acknowledge packets (no answer within %v); check that it is running with debugging enabled and the link settings", t.spec, t.s.cfg.TargetTimeout))
	} else {
		owner.sendState(wire.StateRunning, fmt.Sprintf("target %s is responding again", t.spec))
	}
}

func (t *target) breakIn() {
	if err := t.kdl.SendBreakIn(); err != nil {
		t.s.cfg.Logger.Printf("target %s: break-in: %v", t.spec, err)
	}
}

// resendState sends a halted target's current state change to c.
func (t *target) resendState(c *client) {
	t.mu.Lock()
	sc := t.lastSC
	halted := t.halted
	t.mu.Unlock()
	if halted && sc != nil {
		_ = c.sendKD(uint16(kd.TypeStateChange64), sc)
	}
}

// lost reports a failed target link to its owner.
func (t *target) lost(err error) {
	t.s.cfg.Logger.Printf("target %s: link lost: %v", t.spec, err)
	if c := t.ownerClient(); c != nil {
		c.sendState(wire.StateLost, err.Error())
		c.mu.Lock()
		wc := c.wc
		c.mu.Unlock()
		if wc != nil {
			_ = wc.SendError(wire.TargetUnavailable, fmt.Sprintf("the link to target %s failed: %v", t.spec, err))
		}
		c.stop(wire.TargetUnavailable)
	}
}

func (t *target) setOption(name, value string) error {
	if strings.EqualFold(name, "readahead") {
		return t.setReadAhead(value)
	}
	return fmt.Errorf("unknown session option %q (known: readahead=on|off)", name)
}
