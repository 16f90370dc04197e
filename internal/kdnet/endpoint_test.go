package kdnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet/kdnettest"
	"kdsrv/internal/testkit"
)

const testAck = 40 * time.Millisecond

func testKey(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testDefaults fills what the tests leave out of a Config: a short ACK
// time-out, the test key, and the test's in-memory network in a bubble.
func testDefaults(t testing.TB, c *Config) {
	if c.AckTimeout == 0 {
		c.AckTimeout = testAck
	}
	if c.Key.IsZero() {
		c.Key = testKey(t, "1.2.3.4")
	}
	if n := netOf(t); n != nil && c.ListenUDP == nil {
		c.ListenUDP = n.listen
	}
}

// started registers the endpoint's Close with the test.
func started(t testing.TB, e *Link, err error) *Link {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func listenHost(t testing.TB, cfg HostConfig) *Link {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	testDefaults(t, &cfg.Config)
	h, err := ListenHost(context.Background(), cfg)
	return started(t, h, err)
}

func dialTarget(t testing.TB, host netip.AddrPort, cfg TargetConfig) *Link {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = host.String()
	}
	if cfg.Local == "" {
		cfg.Local = "127.0.0.1:0"
	}
	if cfg.PokeInterval == 0 {
		cfg.PokeInterval = 100 * time.Millisecond
	}
	testDefaults(t, &cfg.Config)
	e, err := DialTarget(context.Background(), cfg)
	return started(t, e, err)
}

// recvPacket reads messages until a data packet arrives; other kinds are
// returned in others.
func recvPacket(ctx context.Context, t testing.TB, e *Link) (p kd.Packet, others []kd.MsgKind) {
	t.Helper()
	for {
		m, err := e.Recv(ctx)
		if err != nil {
			t.Fatalf("%s: waiting for a packet (saw %v): %v", e, others, err)
		}
		if m.Kind == kd.MsgPacket {
			return m.Packet, others
		}
		others = append(others, m.Kind)
	}
}

// TestSession: handshake, the resynchronisation Windows sees from WinDbg
// (RESET, RESEND for the pseudo packet), and the id scheme in both
// directions.
func TestSession(t *testing.T) {
	t.Parallel()
	withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		tgt := dialTarget(t, host.LocalAddr(), TargetConfig{})

		// After the handshake the target hears the host's RESET (and the
		// RESEND answering its pseudo packet), both with nothing pending.
		seen := map[kd.MsgKind]bool{}
		for !seen[kd.MsgReset] || !seen[kd.MsgResend] {
			m, err := tgt.Recv(ctx)
			if err != nil {
				t.Fatalf("target saw %v, then %v", seen, err)
			}
			seen[m.Kind] = true
		}

		var targetIDs []uint32
		sc := bytes.Repeat([]byte{7}, 240)
		if err := tgt.Send(ctx, kd.TypeStateChange64, sc); err != nil {
			t.Fatal(err)
		}
		p, others := recvPacket(ctx, t, host)
		if p.Type != kd.TypeStateChange64 || !bytes.Equal(p.Payload, sc) || len(others) != 0 {
			t.Fatalf("host got %v (after %v)", p, others)
		}
		targetIDs = append(targetIDs, p.ID)
		for i := range 3 {
			req := []byte(fmt.Sprintf("request %d", i))
			if err := host.Send(ctx, kd.TypeStateManipulate, req); err != nil {
				t.Fatal(err)
			}
			q, _ := recvPacket(ctx, t, tgt)
			if want := HostInitialID + uint32(i)*IDStep; q.ID != want || !bytes.Equal(q.Payload, req) {
				t.Fatalf("target got %v %q, want id %#x", q, q.Payload, want)
			}
			if err := tgt.Send(ctx, kd.TypeStateManipulate, []byte(fmt.Sprintf("reply %d", i))); err != nil {
				t.Fatal(err)
			}
			r, _ := recvPacket(ctx, t, host)
			if string(r.Payload) != fmt.Sprintf("reply %d", i) {
				t.Fatalf("host got %q", r.Payload)
			}
			targetIDs = append(targetIDs, r.ID)
		}
		for i := 1; i < len(targetIDs); i++ {
			if targetIDs[i] != targetIDs[i-1]+IDStep {
				t.Fatalf("target ids %#x do not grow by 2", targetIDs)
			}
		}
		if targetIDs[0]&1 != 0 {
			t.Fatalf("target ids %#x are odd", targetIDs)
		}
		hs, ts := host.Stats(), tgt.Stats()
		if hs.PacketsSent != 3 || hs.PacketsReceived != 4 || ts.PacketsSent != 4 || ts.PacketsReceived != 3 {
			t.Fatalf("host %+v\ntarget %+v", hs, ts)
		}
		if hs.Retransmits+ts.Retransmits+hs.Duplicates+ts.Duplicates != 0 {
			t.Fatalf("retransmissions on a clean loopback: host %+v target %+v", hs, ts)
		}
		if hs.ResetsSent != 1 || ts.ResetsReceived != 1 || ts.ResetsSent != 1 || hs.ResendsSent != 1 {
			t.Fatalf("resynchronisation: host %+v target %+v", hs, ts)
		}
		hn, tn := host.NetStats(), tgt.NetStats()
		if hn.Sessions != 1 || tn.Sessions != 1 || hn.Rejected+tn.Rejected+hn.Stale+tn.Stale+hn.Malformed+tn.Malformed != 0 {
			t.Fatalf("host %+v\ntarget %+v", hn, tn)
		}
		if s := host.String() + tgt.String(); strings.Contains(s, "1.2.3.4") {
			t.Fatalf("description shows the key: %s", s)
		}
	})
}

// proxy is a UDP relay between a target and a host that can drop
// datagrams. It can read them too: it knows the control key and derives
// the data key from the responses it relays, as only a key holder can.
type proxy struct {
	front PacketConn
	spy   *spy

	mu  sync.Mutex
	log [][]byte // datagrams relayed to the host, for replays
}

func newProxy(t testing.TB, host netip.AddrPort, key Key, drop func(toHost bool, d Datagram, ok bool) bool) *proxy {
	t.Helper()
	front, back := socket(t, "127.0.0.1:0"), socket(t, "127.0.0.1:0")
	p := &proxy{front: front, spy: newSpy(t, key)}
	r := kdnettest.Start(front, back, host, func(toHost bool, b []byte) bool {
		d, ok := p.spy.open(b)
		if drop != nil && drop(toHost, d, ok) {
			return true
		}
		if toHost {
			p.mu.Lock()
			p.log = append(p.log, bytes.Clone(b))
			p.mu.Unlock()
		}
		return false
	})
	t.Cleanup(r.Close)
	return p
}

func (p *proxy) addr() netip.AddrPort { return addrOf(p.front) }

// spy opens datagrams with the control key and the data key it derives
// from the host responses it sees.
type spy struct {
	controlKey [KeySize]byte
	ctl        *Sealer
	mu         sync.Mutex
	data       *Sealer
}

func newSpy(t testing.TB, key Key) *spy {
	s, err := NewSealer(key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return &spy{controlKey: key.Bytes(), ctl: s}
}

func (s *spy) open(b []byte) (Datagram, bool) {
	if len(b) > 5 && Channel(b[5]) == ChannelControl {
		d, err := s.ctl.Open(b)
		if err != nil {
			return d, false
		}
		if d.HostToTarget && len(d.Payload) == ResponseSize {
			ns, _ := s.ctl.WithDataKey(DeriveDataKey(s.controlKey, d.Payload))
			s.mu.Lock()
			s.data = ns
			s.mu.Unlock()
		}
		return d, true
	}
	s.mu.Lock()
	ds := s.data
	s.mu.Unlock()
	if ds == nil {
		return Datagram{}, false
	}
	d, err := ds.Open(b)
	return d, err == nil
}

// kdKind classifies a relayed datagram's KD content.
func kdKind(d Datagram, ok bool) (PacketKind, kd.Packet) {
	if !ok || d.Channel != ChannelData {
		return 0, kd.Packet{}
	}
	k, p, err := ParsePacket(d.Payload)
	if err != nil {
		return 0, kd.Packet{}
	}
	return k, p
}

// echoTarget answers every data packet with a packet carrying the same
// payload, until ctx ends or stop is called; stop returns once the echo
// has stopped.
func echoTarget(ctx context.Context, tgt *Link) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := tgt.Recv(ctx)
			if err != nil {
				return
			}
			if m.Kind != kd.MsgPacket {
				continue
			}
			if err := tgt.Send(ctx, kd.TypeStateManipulate, m.Packet.Payload); err != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// wantSessions fails the test unless l has completed want handshakes
// since it started (after what, for the message).
func wantSessions(t testing.TB, l *Link, want uint64, after string) {
	t.Helper()
	if n := l.NetStats().Sessions; n != want {
		t.Fatalf("%s end: %d sessions after %s, want %d", l.role, n, after, want)
	}
}

// restartHost closes host and listens again on its address, as a
// restarted kdsrv does.
func restartHost(t testing.TB, host *Link) *Link {
	t.Helper()
	addr := host.LocalAddr()
	host.Close()
	return listenHost(t, HostConfig{Addr: addr.String()})
}

// relayed returns a copy of the datagrams the proxy relayed to the host.
func (p *proxy) relayed() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.log...)
}

// TestTargetedLoss drops one datagram of each kind once and checks that
// the link recovers each time without delivering anything twice.
func TestTargetedLoss(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		toHost bool
		kind   PacketKind
		typ    kd.PacketType
		// Afterwards the sender of the lost datagram's data packet (the
		// host when the request or its ACK was lost) must have
		// retransmitted it, and where an ACK was lost the receiver must
		// have recognised the repeat as a duplicate.
		hostSent, ackLost bool
	}{
		{"host request", false, KindData, kd.TypeStateManipulate, true, false},
		{"ACK of the request", true, KindControl, kd.TypeAcknowledge, true, true},
		{"target reply", true, KindData, kd.TypeStateManipulate, false, false},
		{"ACK of the reply", false, KindControl, kd.TypeAcknowledge, false, true},
	}
	// check tells whether the counters show the recovery the row expects.
	check := func(hostSent, ackLost bool, h, tg kd.Stats) error {
		sender, receiver := h, tg
		if !hostSent {
			sender, receiver = tg, h
		}
		if sender.Retransmits == 0 {
			return errors.New("the sender did not retransmit")
		}
		if ackLost && receiver.Duplicates == 0 {
			return errors.New("the repeat was not recognised")
		}
		return nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
				var armed, dropped atomic.Bool
				px := newProxy(t, host.LocalAddr(), testKey(t, "1.2.3.4"), func(toHost bool, d Datagram, ok bool) bool {
					k, p := kdKind(d, ok)
					if armed.Load() && toHost == tt.toHost && k == tt.kind && p.Type == tt.typ && !dropped.Load() {
						dropped.Store(true)
						return true
					}
					return false
				})
				tgt := dialTarget(t, px.addr(), TargetConfig{})
				defer echoTarget(ctx, tgt)()
				// One clean exchange first, so the session is settled.
				exchange(ctx, t, host, "warm-up")
				armed.Store(true)
				exchange(ctx, t, host, "the one")
				exchange(ctx, t, host, "after")
				if !dropped.Load() {
					t.Fatal("nothing was dropped")
				}
				// Give late repeats time to arrive, then check that none
				// was delivered.
				time.Sleep(4 * testAck)
				hs, ts := host.Stats(), tgt.Stats()
				if err := check(tt.hostSent, tt.ackLost, hs, ts); err != nil {
					t.Fatalf("%v: host %+v target %+v", err, hs, ts)
				}
				if hs.PacketsReceived != 3 || ts.PacketsReceived != 3 {
					t.Fatalf("delivered host %d target %d, want 3 each", hs.PacketsReceived, ts.PacketsReceived)
				}
			})
		})
	}
}

// exchange sends a request and waits for its echo.
func exchange(ctx context.Context, t testing.TB, host *Link, s string) {
	t.Helper()
	if err := host.Send(ctx, kd.TypeStateManipulate, []byte(s)); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
	p, _ := recvPacket(ctx, t, host)
	if string(p.Payload) != s {
		t.Fatalf("echo of %q is %q", s, p.Payload)
	}
}

// TestRandomLoss: 10% loss each way, every exchange completes exactly once
// and in order, the handshake included.
func TestRandomLoss(t *testing.T) {
	t.Parallel()
	withHost(t, 60*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(1, 2))
		var drops atomic.Int64
		px := newProxy(t, host.LocalAddr(), testKey(t, "1.2.3.4"), func(bool, Datagram, bool) bool {
			mu.Lock()
			defer mu.Unlock()
			if rng.IntN(10) == 0 {
				drops.Add(1)
				return true
			}
			return false
		})
		tgt := dialTarget(t, px.addr(), TargetConfig{})
		defer echoTarget(ctx, tgt)()
		const n = 100
		for i := range n {
			exchange(ctx, t, host, fmt.Sprintf("call %d", i))
		}
		hs, ts := host.Stats(), tgt.Stats()
		if hs.PacketsReceived != n || ts.PacketsReceived != n {
			t.Fatalf("delivered host %d target %d, want %d each", hs.PacketsReceived, ts.PacketsReceived, n)
		}
		if drops.Load() == 0 || hs.Retransmits+ts.Retransmits == 0 {
			t.Fatalf("%d drops, host %+v target %+v", drops.Load(), hs, ts)
		}
	})
}

// TestTargetReboot: a target that comes back with a new client random and
// restarted sequence numbers gets a new session; the host reports MsgSync,
// restarts its ids and the link works on. A packet the old session's
// target never acknowledged is not sent into the new session (that boot
// did not ask for it): its send fails with kd.ErrPeerRestarted, and the
// host's next packet has the new session's first id, so the new boot does
// not take it for a repeat.
func TestTargetReboot(t *testing.T) {
	t.Parallel()
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("pending=%v", pending), func(t *testing.T) {
			t.Parallel()
			withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
				tgt := dialTarget(t, host.LocalAddr(), TargetConfig{})
				stop := echoTarget(ctx, tgt)
				exchange(ctx, t, host, "before")
				exchange(ctx, t, host, "before 2")
				stop()
				tgt.Close()
				lost := make(chan error, 1)
				if pending {
					go func() { lost <- host.Send(ctx, kd.TypeStateManipulate, []byte("for the old boot")) }()
					testkit.WaitFor(t, "the packet to go out to the old session", func() bool { return host.Stats().PacketsSent >= 3 })
				}

				tgt2 := dialTarget(t, host.LocalAddr(), TargetConfig{})
				if pending {
					if err := <-lost; !errors.Is(err, kd.ErrPeerRestarted) {
						t.Fatalf("send across the reboot: %v, want kd.ErrPeerRestarted", err)
					}
				}
				afterReboot(ctx, t, host, tgt2)
				wantSessions(t, host, 2, "the reboot")
			})
		})
	}
}

// afterReboot checks a host whose target rebooted into tgt2: the host
// reports a sync, and its next packet reaches the new boot with the new
// session's first id.
func afterReboot(ctx context.Context, t *testing.T, host, tgt2 *Link) {
	t.Helper()
	if m, err := host.Recv(ctx); err != nil || m.Kind != kd.MsgSync {
		t.Fatalf("host: %v %v, want a sync", m.Kind, err)
	}
	if err := host.Send(ctx, kd.TypeStateManipulate, []byte("after")); err != nil {
		t.Fatal(err)
	}
	p, _ := recvPacket(ctx, t, tgt2)
	if p.ID != HostInitialID || string(p.Payload) != "after" {
		t.Fatalf("rebooted target got %v %q", p, p.Payload)
	}
}

// TestHostRestart: the target's keep-alive pokes find a restarted host,
// and a packet pending across the restart is delivered.
func TestHostRestart(t *testing.T) {
	t.Parallel()
	withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		addr := host.LocalAddr()
		tgt := dialTarget(t, addr, TargetConfig{})
		if err := tgt.Send(ctx, kd.TypeDebugIO, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if p, _ := recvPacket(ctx, t, host); string(p.Payload) != "hello" {
			t.Fatalf("got %q", p.Payload)
		}
		host.Close()

		sent := make(chan error, 1)
		go func() { sent <- tgt.Send(ctx, kd.TypeDebugIO, []byte("anyone there?")) }()
		time.Sleep(3 * testAck)
		host2 := listenHost(t, HostConfig{Addr: addr.String()})
		p, others := recvPacket(ctx, t, host2)
		if string(p.Payload) != "anyone there?" {
			t.Fatalf("new host got %q", p.Payload)
		}
		for _, k := range others {
			if k == kd.MsgSync {
				t.Fatal("a fresh host reported a sync for its first session")
			}
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		wantSessions(t, tgt, 2, "the host restart")
	})
}

// TestContactTarget: with a target address the host makes a silent target
// poke at once (the target's own interval is an hour here).
func TestContactTarget(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		// Both ends use the same port, as KDNET does; on the in-memory
		// network any address and port are free.
		const port = 50000
		hostAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		// The target starts first: its one poke goes nowhere.
		tgt := dialTarget(t, hostAddr, TargetConfig{
			Local:        fmt.Sprintf("127.0.0.2:%d", port),
			PokeInterval: time.Hour,
		})
		testkit.WaitFor(t, "the first poke", func() bool { return tgt.NetStats().Pokes == 1 })
		host := listenHost(t, HostConfig{
			Addr:            hostAddr.String(),
			Target:          netip.MustParseAddr("127.0.0.2"),
			ContactInterval: 50 * time.Millisecond,
		})
		testkit.WaitFor(t, "a session", func() bool { return host.NetStats().Sessions == 1 })
		if host.NetStats().Contacts == 0 || tgt.NetStats().Pokes < 2 {
			t.Fatalf("host %+v target %+v", host.NetStats(), tgt.NetStats())
		}
		// Contacts stop once the target is found.
		c := host.NetStats().Contacts
		time.Sleep(200 * time.Millisecond)
		if host.NetStats().Contacts != c {
			t.Fatal("the host keeps contacting a target it has a session with")
		}
		// Datagrams from any other address are not even opened.
		other := socket(t, "127.0.0.1:0")
		other.WriteToUDPAddrPort([]byte("MDBG junk"), hostAddr)
		testkit.WaitFor(t, "the foreign datagram", func() bool { return host.NetStats().Foreign == 1 })
	})
}

// TestWrongKeyAndReplay: a target with another key gets no answer and
// changes nothing; replayed authentic datagrams change nothing either.
func TestWrongKeyAndReplay(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ctx := ctxFor(t, 20*time.Second)
		var logs lockedBuffer
		host := listenHost(t, HostConfig{Config: Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
		wrong := dialTarget(t, host.LocalAddr(), TargetConfig{Config: Config{Key: testKey(t, "1.2.3.5")}, PokeInterval: 20 * time.Millisecond})
		testkit.WaitFor(t, "rejected pokes", func() bool { return host.NetStats().Rejected >= 5 })
		if n := wrong.NetStats(); n.Received != 0 || n.Sessions != 0 {
			t.Fatalf("the wrong-key target heard something: %+v", n)
		}
		if n := host.NetStats(); n.Sessions != 0 || n.Sent != 0 {
			t.Fatalf("host answered a wrong key: %+v", n)
		}
		wrong.Close()
		l := logs.String()
		if !strings.Contains(l, "failed authentication") || strings.Contains(l, "1.2.3.") {
			t.Fatalf("log: %q", l)
		}

		px := newProxy(t, host.LocalAddr(), testKey(t, "1.2.3.4"), nil)
		tgt := dialTarget(t, px.addr(), TargetConfig{})
		defer echoTarget(ctx, tgt)()
		exchange(ctx, t, host, "one")
		exchange(ctx, t, host, "two")
		before, beforeNet := host.Stats(), host.NetStats()

		// Replay everything the target sent, from another socket.
		replay := px.relayed()
		r := socket(t, "127.0.0.1:0")
		for _, b := range replay {
			r.WriteToUDPAddrPort(b, host.LocalAddr())
		}
		want := beforeNet.Stale + uint64(len(replay))
		testkit.WaitFor(t, "replays to be counted", func() bool { return host.NetStats().Stale >= want })
		after, afterNet := host.Stats(), host.NetStats()
		if after.PacketsReceived != before.PacketsReceived || afterNet.Sessions != 1 || afterNet.Sent != beforeNet.Sent {
			t.Fatalf("a replay changed the state:\nbefore %+v %+v\nafter  %+v %+v", before, beforeNet, after, afterNet)
		}
		exchange(ctx, t, host, "three")
	})
}

// TestJunkFlood: junk datagrams leave the session working, are counted,
// and do not grow memory.
func TestJunkFlood(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ctx := ctxFor(t, 60*time.Second)
		host := listenHost(t, HostConfig{Config: Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}})
		tgt := dialTarget(t, host.LocalAddr(), TargetConfig{Config: Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}})
		defer echoTarget(ctx, tgt)()
		exchange(ctx, t, host, "before")

		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heapBefore := ms.HeapAlloc
		junk := socket(t, "127.0.0.1:0")
		rng := rand.New(rand.NewPCG(3, 4))
		buf := make([]byte, 2048)
		const n = 20000
		for i := range n {
			size := MinDatagram + 16*rng.IntN(100)
			if i%7 == 0 {
				size = rng.IntN(len(buf))
			}
			b := buf[:size]
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if len(b) >= 6 && i%3 != 0 {
				copy(b, Magic)
				b[5] = byte(i % 2)
			}
			junk.WriteToUDPAddrPort(b, host.LocalAddr())
			if i%1000 == 0 {
				exchange(ctx, t, host, fmt.Sprintf("during %d", i))
			}
		}
		exchange(ctx, t, host, "after")
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if grow := int64(ms.HeapAlloc) - int64(heapBefore); grow > 8<<20 {
			t.Fatalf("heap grew by %d bytes", grow)
		}
		ns := host.NetStats()
		if ns.Rejected == 0 || ns.Sessions != 1 {
			t.Fatalf("host %+v", ns)
		}
		t.Logf("%d junk datagrams sent, %d read and rejected", n, ns.Rejected)
	})
}

// TestBreakIn: a break-in before the handshake is sent when the target
// pokes; an unanswered one is repeated a bounded number of times and
// stops once the state change arrives.
func TestBreakIn(t *testing.T) {
	t.Parallel()
	withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		if err := host.SendBreakIn(); err != nil {
			t.Fatal(err)
		}
		tgt := dialTarget(t, host.LocalAddr(), TargetConfig{})
		breaks := 0
		for breaks < 2 {
			m, err := tgt.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind == kd.MsgBreakIn {
				breaks++
			}
		}
		if err := tgt.Send(ctx, kd.TypeStateChange64, make([]byte, 240)); err != nil {
			t.Fatal(err)
		}
		if p, _ := recvPacket(ctx, t, host); p.Type != kd.TypeStateChange64 {
			t.Fatalf("got %v", p)
		}
		sent := host.Stats().BreakInsSent
		time.Sleep(6 * testAck)
		if got := host.Stats().BreakInsSent; got != sent || got > breakInRepeats {
			t.Fatalf("break-ins sent: %d then %d", sent, got)
		}
		// Unanswered, the repeats stop at the bound.
		if err := host.SendBreakIn(); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "the repeats to end", func() bool { return host.Stats().BreakInsSent == sent+breakInRepeats })
		time.Sleep(4 * testAck)
		if got := host.Stats().BreakInsSent; got != sent+breakInRepeats {
			t.Fatalf("break-ins sent %d, want %d", got, sent+breakInRepeats)
		}
		if err := tgt.SendBreakIn(); err == nil {
			t.Fatal("a target sent a break-in")
		}
	})
}

// TestQueueBound: a host whose owner does not read stops acknowledging
// at QueueLimit; the target retransmits until it reads.
func TestQueueBound(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ctx := ctxFor(t, 20*time.Second)
		host := listenHost(t, HostConfig{Config: Config{QueueLimit: 3}})
		tgt := dialTarget(t, host.LocalAddr(), TargetConfig{})
		done := make(chan error, 1)
		go func() {
			for i := range 6 {
				if err := tgt.Send(ctx, kd.TypeDebugIO, []byte{byte(i)}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		testkit.WaitFor(t, "a dropped packet", func() bool { return host.Stats().Dropped > 0 })
		for i := range 6 {
			p, _ := recvPacket(ctx, t, host)
			if len(p.Payload) != 1 || p.Payload[0] != byte(i) {
				t.Fatalf("packet %d: %v", i, p.Payload)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := ListenHost(context.Background(), HostConfig{Addr: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("no key: %v", err)
	}
	busy := listenHost(t, HostConfig{})
	_, err := ListenHost(context.Background(), HostConfig{Config: Config{Key: testKey(t, "1.1.1.1")}, Addr: busy.LocalAddr().String()})
	if err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("busy port: %v", err)
	}
	for _, h := range []string{"nohostport", "127.0.0.1:0", "127.0.0.1:x"} {
		_, err := DialTarget(context.Background(), TargetConfig{Config: Config{Key: testKey(t, "1.1.1.1")}, Host: h})
		if err == nil {
			t.Fatalf("DialTarget(%q) worked", h)
		}
	}
	e := listenHost(t, HostConfig{})
	e.Close()
	e.Close()
	if err := e.Send(context.Background(), kd.TypeStateManipulate, nil); !errors.Is(err, kd.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := e.Recv(context.Background()); !errors.Is(err, kd.ErrClosed) {
		t.Fatalf("recv after close: %v", err)
	}
	if err := e.Send(context.Background(), kd.TypeReset, nil); err == nil {
		t.Fatal("sent a control type as data")
	}
}

// lockedBuffer is the shared concurrency-safe buffer of the tests.
type lockedBuffer = testkit.Buffer
