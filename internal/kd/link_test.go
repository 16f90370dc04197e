package kd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"kdsrv/internal/testkit"
)

// echoTarget answers every STATE_MANIPULATE packet with the same payload
// prefixed by "re:" until the link stops. It also counts break-ins and
// resets.
type echoTarget struct {
	l       *Link
	breaks  atomic.Int32
	resets  atomic.Int32
	stopped chan struct{}
}

func startEchoTarget(t testing.TB, l *Link) *echoTarget {
	e := &echoTarget{l: l, stopped: make(chan struct{})}
	go func() {
		defer close(e.stopped)
		ctx := context.Background()
		for {
			m, err := l.Recv(ctx)
			if err != nil {
				return
			}
			switch m.Kind {
			case MsgBreakIn:
				e.breaks.Add(1)
			case MsgReset:
				e.resets.Add(1)
			case MsgPacket:
				if m.Packet.Type != TypeStateManipulate {
					continue
				}
				reply := append([]byte("re:"), m.Packet.Payload...)
				if err := l.Send(ctx, TypeStateManipulate, reply); err != nil {
					return
				}
			}
		}
	}()
	return e
}

// call sends a request carrying seq and waits for the matching reply,
// re-issuing the request when no reply comes in time (what debuggers do).
// Replies that do not match are stale duplicates and are ignored.
func call(t testing.TB, host *Link, seq uint64, body []byte) []byte {
	t.Helper()
	req := binary.LittleEndian.AppendUint64(nil, seq)
	req = append(req, body...)
	want := append([]byte("re:"), req...)
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := host.Send(ctx, TypeStateManipulate, req)
		for err == nil {
			var m Message
			m, err = host.Recv(ctx)
			if err == nil && m.Kind == MsgPacket && bytes.Equal(m.Packet.Payload, want) {
				cancel()
				return m.Packet.Payload
			}
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v", seq, err)
		}
	}
	t.Fatalf("call %d: no reply within 20s; host link %+v", seq, host.Stats())
	return nil
}

func linkPair(t testing.TB, a, b net.Conn, cfg Config) (host, target *Link) {
	host = NewHostLink(a, cfg)
	target = NewTargetLink(b, cfg)
	t.Cleanup(func() {
		host.Close()
		target.Close()
	})
	return host, target
}

func exerciseLink(t *testing.T, host, target *Link, calls int) {
	e := startEchoTarget(t, target)
	// Attach like a debugger: break-in, then RESET; the target answers
	// RESET with RESET and the host adopts the restarted streams.
	if err := host.SendBreakIn(); err != nil {
		t.Fatal(err)
	}
	if err := host.SendReset(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := host.Recv(ctx)
	if err != nil || m.Kind != MsgReset {
		t.Fatalf("host waiting for RESET reply: %v %v", m.Kind, err)
	}
	for i := range calls {
		body := bytes.Repeat([]byte{byte(i)}, i%300)
		call(t, host, uint64(i), body)
	}
	testkit.WaitFor(t, "the target to see the break-in and the reset", func() bool { return e.breaks.Load() == 1 && e.resets.Load() == 1 })
	hs := host.Stats()
	if hs.PacketsSent != uint64(calls) || hs.ResetsSent != 1 || hs.ResetsReceived != 1 {
		t.Fatalf("host stats %+v", hs)
	}
	ts := target.Stats()
	if ts.BreakInsRecv != 1 || ts.ResetsReceived != 1 || ts.ResetsSent != 1 {
		t.Fatalf("target stats %+v", ts)
	}
}

func TestLinkOverPipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		host, target := linkPair(t, a, b, Config{})
		exerciseLink(t, host, target, 200)
	})
}

func TestLinkOverUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	host, target := linkPair(t, a, b, Config{})
	exerciseLink(t, host, target, 200)
}

func TestTargetSyncIDAndAckMasking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		var mu sync.Mutex
		var hostSent []Packet
		cfg := Config{Trace: nil}
		hc := cfg
		hc.Trace = func(d Direction, p Packet) {
			if d == Sent {
				mu.Lock()
				hostSent = append(hostSent, Packet{Type: p.Type, ID: p.ID})
				mu.Unlock()
			}
		}
		host := NewHostLink(a, hc)
		target := NewTargetLink(b, Config{})
		defer host.Close()
		defer target.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		// The target's first packet goes out as INITIAL|SYNC; the host ACKs it
		// with the sync bit cleared and reports the restart.
		errc := make(chan error, 1)
		go func() { errc <- target.Send(ctx, TypeStateChange64, []byte("state")) }()
		m, err := host.Recv(ctx)
		if err != nil || m.Kind != MsgSync {
			t.Fatalf("want MsgSync first, got %v %v", m.Kind, err)
		}
		m, err = host.Recv(ctx)
		if err != nil || m.Kind != MsgPacket || m.Packet.ID != InitialPacketID|SyncPacketID {
			t.Fatalf("want state change with id 0x80800800, got %v %v %v", m.Kind, m.Packet, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(hostSent) != 1 || hostSent[0].Type != TypeAcknowledge || hostSent[0].ID != InitialPacketID {
			t.Fatalf("host sent %v, want one ACK with id 0x80800000", hostSent)
		}
		mu.Unlock()
		// The target's next packet uses 0x80800001, without the sync bit.
		go func() { errc <- target.Send(ctx, TypeDebugIO, []byte("print")) }()
		m, err = host.Recv(ctx)
		if err != nil || m.Packet.ID != InitialPacketID|1 {
			t.Fatalf("second packet: %v %v", m.Packet, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestSendRetriesExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		go func() { // a silent peer that reads everything
			buf := make([]byte, 1024)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		l := NewTargetLink(a, Config{AckTimeout: 10 * time.Millisecond})
		defer l.Close()
		err := l.SendRetries(context.Background(), TypeDebugIO, []byte("x"), 3)
		if !errors.Is(err, ErrRetriesExhausted) {
			t.Fatalf("got %v", err)
		}
		if s := l.Stats(); s.Retransmits != 3 {
			t.Fatalf("retransmits %d, want 3", s.Retransmits)
		}
	})
}

func TestLinkPeerCloseEndsRecvAndSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		l := NewHostLink(a, Config{})
		defer l.Close()
		b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := l.Recv(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv after peer close: %v", err)
		}
		if err := l.Send(ctx, TypeStateManipulate, []byte("x")); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send after peer close: %v", err)
		}
	})
}

// noisyConn corrupts, drops and duplicates bytes written through it.
type noisyConn struct {
	net.Conn
	mu   sync.Mutex
	r    *rand.Rand
	rate float64
	hits atomic.Int64
}

func (c *noisyConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	out := make([]byte, 0, len(b)+8)
	for _, x := range b {
		if c.r.Float64() < c.rate {
			c.hits.Add(1)
			switch c.r.IntN(3) {
			case 0: // corrupt
				out = append(out, x^byte(1+c.r.IntN(255)))
			case 1: // drop
			case 2: // duplicate
				out = append(out, x, x)
			}
			continue
		}
		out = append(out, x)
	}
	c.mu.Unlock()
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestLinkNoisyLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls = 1000
		const rate = 2e-3
		a, b := net.Pipe()
		na := &noisyConn{Conn: a, r: rand.New(rand.NewPCG(11, 12)), rate: rate}
		nb := &noisyConn{Conn: b, r: rand.New(rand.NewPCG(13, 14)), rate: rate}
		cfg := Config{AckTimeout: 40 * time.Millisecond, InterByteTimeout: 20 * time.Millisecond}
		host, target := linkPair(t, na, nb, cfg)
		startEchoTarget(t, target)
		for i := range calls {
			body := make([]byte, 16+i%200)
			for j := range body {
				body[j] = byte(i + j)
			}
			got := call(t, host, uint64(i), body)
			if len(got) != 3+8+len(body) {
				t.Fatalf("call %d: reply of %d bytes", i, len(got))
			}
		}
		hits := na.hits.Load() + nb.hits.Load()
		hs, ts := host.Stats(), target.Stats()
		t.Logf("noise events %d; host %+v; target %+v", hits, hs, ts)
		if hits == 0 || hs.Retransmits+ts.Retransmits == 0 {
			t.Fatalf("the line was not noisy enough to test recovery (hits %d)", hits)
		}
	})
}

func TestSendRejectsOversizedAndControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		l := NewHostLink(a, Config{})
		defer l.Close()
		if err := l.Send(context.Background(), TypeAcknowledge, nil); err == nil {
			t.Fatal("control type accepted by Send")
		}
		if err := l.Send(context.Background(), TypeStateManipulate, make([]byte, MaxPayload+1)); err == nil {
			t.Fatal("oversized payload accepted")
		}
	})
}

func ExampleLink() {
	a, b := net.Pipe()
	host := NewHostLink(a, Config{})
	target := NewTargetLink(b, Config{})
	defer host.Close()
	defer target.Close()
	ctx := context.Background()
	go target.Send(ctx, TypeDebugIO, []byte("hello"))
	host.Recv(ctx) // MsgSync: the target's stream starts with the sync bit
	m, _ := host.Recv(ctx)
	fmt.Printf("%s %q\n", m.Packet.Type, m.Packet.Payload)
	// Output: DEBUG_IO "hello"
}

// The id is not covered by the checksum: a data packet whose id is no
// KDCOM id (a corrupted byte that also set the sync bit) must not make the
// host adopt a nonsense id stream; it is refused with RESEND.
func TestHostRefusesCorruptedID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		host := NewHostLink(a, Config{})
		defer host.Close()
		b.SetDeadline(time.Now().Add(5 * time.Second))
		bad := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: 0x80805b00, Payload: []byte("stale")})
		good := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: []byte("fresh")})
		go func() {
			b.Write(bad)
			b.Write(good)
		}()
		var d Decoder
		buf := make([]byte, 256)
		var got []Packet
		for len(got) < 2 {
			n, err := b.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			d.Feed(buf[:n])
			for {
				f, ok := d.Next()
				if !ok {
					break
				}
				got = append(got, f.Packet)
			}
		}
		if got[0].Type != TypeResend || got[1].Type != TypeAcknowledge || got[1].ID != InitialPacketID {
			t.Fatalf("host answered %v", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := host.Recv(ctx)
		if err != nil || string(m.Packet.Payload) != "fresh" {
			t.Fatalf("delivered %v %v", m, err)
		}
	})
}

// A peer streaming break-in bytes while nobody reads the link cannot grow
// its queue without bound.
func TestBreakInFloodBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		l := NewTargetLink(a, Config{QueueLimit: 8})
		defer l.Close()
		b.SetWriteDeadline(time.Now().Add(10 * time.Second))
		flood := bytes.Repeat([]byte{BreakInByte, 'x'}, 64<<10)
		if _, err := b.Write(flood); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := l.Stats().BreakInsRecv; got != 64<<10 {
			t.Fatalf("%d break-ins counted, want %d", got, 64<<10)
		}
		n := 0
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, err := l.Recv(ctx)
			cancel()
			if err != nil {
				break
			}
			n++
		}
		if n > 8 || n == 0 {
			t.Fatalf("%d break-ins queued, want 1..8", n)
		}
		b.Close()
	})
}

// The target's restart packet arriving again (our ACK was lost) is a
// duplicate: not a second stop, and our id stream is not restarted twice.
func TestDuplicateSyncPacketNotRedelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host, b := rawHost(t)
		go io.Copy(io.Discard, b) // the host's ACKs
		sc := AppendPacket(nil, Packet{Type: TypeStateChange64, ID: InitialPacketID | SyncPacketID, Payload: []byte("stop")})
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		b.Write(sc)
		b.Write(sc)
		next := AppendPacket(nil, Packet{Type: TypeDebugIO, ID: InitialPacketID | 1, Payload: []byte("next")})
		b.Write(next)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var kinds []string
		for len(kinds) < 3 {
			m, err := host.Recv(ctx)
			if err != nil {
				t.Fatalf("after %v: %v", kinds, err)
			}
			kinds = append(kinds, m.Kind.String()+":"+string(m.Packet.Payload))
		}
		if want := "sync: packet:stop packet:next"; strings.Join(kinds, " ") != want {
			t.Fatalf("got %v, want %s", kinds, want)
		}
		if host.Stats().Duplicates != 1 {
			t.Fatalf("duplicates %d", host.Stats().Duplicates)
		}
	})
}

// A target that reboots again starts with the same sync id. Once anything
// was accepted since the last restart, that is a new restart, even when
// an even number of packets brought the ids back to where they were; and
// right after a restart, a sync packet with other contents is one too.
// Taking either for a repeat swallows the new boot's first packet and
// leaves the host's ids out of step with the target's for good.
func TestRepeatedRebootsAreEachARestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		between []string // payloads of the packets accepted between the two restarts
		second  string   // the second restart packet's payload
	}{
		{"two packets between", []string{"stop", "reply"}, "boot 2"},
		{"four packets between", []string{"stop", "reply", "stop", "reply"}, "boot 2"},
		{"two packets between, same bytes", []string{"stop", "reply"}, "boot 1"},
		{"nothing between, other bytes", nil, "boot 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host, b := rawHost(t)
				go io.Copy(io.Discard, b) // the host's ACKs
				b.SetWriteDeadline(time.Now().Add(5 * time.Second))
				restart := func(text string) {
					b.Write(AppendPacket(nil, Packet{Type: TypeDebugIO, ID: InitialPacketID | SyncPacketID, Payload: []byte(text)}))
				}
				restart("boot 1")
				id := InitialPacketID | 1
				for _, p := range tc.between {
					b.Write(AppendPacket(nil, Packet{Type: TypeDebugIO, ID: id, Payload: []byte(p)}))
					id ^= 1
				}
				restart(tc.second)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var got []string
				want := 2 + len(tc.between) + 2
				for len(got) < want {
					m, err := host.Recv(ctx)
					if err != nil {
						t.Fatalf("after %v: %v", got, err)
					}
					got = append(got, m.Kind.String()+":"+string(m.Packet.Payload))
				}
				if got[len(got)-2] != "sync:" || got[len(got)-1] != "packet:"+tc.second {
					t.Fatalf("got %v: the second restart was not delivered as one", got)
				}
				if d := host.Stats().Duplicates; d != 0 {
					t.Fatalf("%d duplicates counted", d)
				}
			})
		})
	}
}

// rawHost returns a host link on one end of a net.Pipe and the other end,
// for a test that plays the target byte by byte; both close when the test
// ends.
func rawHost(t *testing.T) (*Link, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	host := NewHostLink(a, Config{})
	t.Cleanup(func() {
		host.Close()
		b.Close()
	})
	return host, b
}
