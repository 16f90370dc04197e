package netem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"kdsrv/internal/testkit"
)

// hop is a one-way path through the emulator: bytes written on w are read
// on r.
type hop struct {
	w, r net.Conn
}

// hops builds the same one-way emulated path in every way the package
// offers, so each behaviour is checked on all of them.
func hops(t *testing.T, p Profile) map[string]hop {
	t.Helper()
	out := map[string]hop{}

	a, b := Pipe(p)
	t.Cleanup(func() { a.Close(); b.Close() })
	out["pipe"] = hop{a, b}

	x, y := testkit.TCPPair(t)
	wx := Wrap(x, p)
	t.Cleanup(func() { wx.Close() })
	out["wrap-write"] = hop{wx, y}

	x2, y2 := testkit.TCPPair(t)
	wx2 := Wrap(x2, p)
	t.Cleanup(func() { wx2.Close() })
	out["wrap-read"] = hop{y2, wx2}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	px, err := NewProxy("127.0.0.1:0", ln.Addr().String(), p)
	if err != nil {
		t.Fatalf("NewProxy: %v", err)
	}
	t.Cleanup(func() { px.Close() })
	d := net.Dialer{Timeout: testTimeout}
	c, err := d.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout))
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept from proxy: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	out["proxy"] = hop{c, s}
	return out
}

func TestDelayIsAtLeastProfileDelay(t *testing.T) {
	t.Parallel()
	const delay = 40 * time.Millisecond
	for name, h := range hops(t, Profile{Delay: delay}) {
		t.Run(name, func(t *testing.T) {
			msg := []byte("ping")
			start := time.Now()
			if _, err := h.w.Write(msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			got := readN(t, h.r, len(msg))
			if elapsed := time.Since(start); elapsed < delay {
				t.Errorf("message arrived after %v, want ≥ Delay %v", elapsed, delay)
			}
			if !bytes.Equal(got, msg) {
				t.Errorf("read %q, want %q", got, msg)
			}
		})
	}
}

func TestOrderPreservedUnderJitter(t *testing.T) {
	t.Parallel()
	const n = 400
	p := Profile{Delay: 3 * time.Millisecond, Jitter: 3 * time.Millisecond, Seed: 11}
	for name, h := range hops(t, p) {
		t.Run(name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				var b [4]byte
				for i := range n {
					binary.BigEndian.PutUint32(b[:], uint32(i))
					if _, err := h.w.Write(b[:]); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			got := readN(t, h.r, 4*n)
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			for i := range n {
				if v := binary.BigEndian.Uint32(got[4*i:]); v != uint32(i) {
					t.Fatalf("word %d is %d: the stream was reordered", i, v)
				}
			}
		})
	}
}

// TestJitterModel checks the arrival times the model computes: within
// Delay±Jitter when segments are far apart, never decreasing when they are
// close, and really jittered.
func TestJitterModel(t *testing.T) {
	t.Parallel()
	p := Profile{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Seed: 3}
	l := newLink(p, 0)
	base := time.Now()
	seen := map[time.Duration]bool{}
	for i := range 50 {
		now := base.Add(time.Duration(i) * 100 * time.Millisecond)
		l.schedule([]byte{1}, now)
		d := l.segs[len(l.segs)-1].at.Sub(now)
		if d < 10*time.Millisecond || d > 30*time.Millisecond {
			t.Fatalf("segment %d delayed %v, want within 20ms±10ms", i, d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 50 segments: jitter is not applied", len(seen))
	}

	l = newLink(p, 0)
	clamped := 0
	for i := range 200 {
		l.schedule([]byte{1}, base.Add(time.Duration(i)*time.Millisecond))
		if i > 0 {
			prev, cur := l.segs[i-1].at, l.segs[i].at
			if cur.Before(prev) {
				t.Fatalf("segment %d arrives before segment %d", i, i-1)
			}
			if cur.Equal(prev) {
				clamped++
			}
		}
	}
	if clamped == 0 {
		t.Errorf("no segment was held back behind an earlier one; the in-order clamp was not exercised")
	}
}

func TestRateLimitsThroughput(t *testing.T) {
	t.Parallel()
	const rate = 1_000_000 // 8mbit
	const total = 200_000
	for name, h := range hops(t, Profile{Rate: rate}) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			errc := make(chan error, 1)
			go func() {
				chunk := make([]byte, 4096)
				for sent := 0; sent < total; sent += len(chunk) {
					if _, err := h.w.Write(chunk[:min(len(chunk), total-sent)]); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			readN(t, h.r, total)
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			want := time.Duration(total) * time.Second / rate
			if elapsed := time.Since(start); elapsed < want {
				t.Errorf("%d bytes at %d B/s took %v, want ≥ %v", total, rate, elapsed, want)
			}
		})
	}
}

// TestRateModel checks the serialisation arithmetic exactly.
func TestRateModel(t *testing.T) {
	t.Parallel()
	l := newLink(Profile{Rate: 1_000_000, Delay: 5 * time.Millisecond}, 0)
	now := time.Now()
	for range 10 {
		l.schedule(make([]byte, 1000), now)
	}
	if got, want := l.segs[9].at.Sub(now), 15*time.Millisecond; got != want {
		t.Errorf("10×1000 B at 1 MB/s + 5ms delay: last arrival %v after write, want %v", got, want)
	}
}

func TestLossPenaltyAndStats(t *testing.T) {
	t.Parallel()
	const segments = 200
	tests := []struct {
		name string
		loss float64
		seed int64
	}{
		{"none", 0, 1},
		{"all", 1, 1},
		{"quarter-seed-7", 0.25, 7},
		{"tenth-seed-99", 0.1, 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := int64(0)
			if tt.loss > 0 {
				r := newLossRand(tt.seed, 0)
				for range segments {
					if r.Float64() < tt.loss {
						want++
					}
				}
			}
			a, b := Pipe(Profile{Loss: tt.loss, Seed: tt.seed})
			defer a.Close()
			defer b.Close()
			for i := range segments {
				if _, err := a.Write([]byte{byte(i)}); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			sent := a.(*Conn).Stats().Sent
			if sent.Lost != want || sent.Segments != segments || sent.Bytes != segments {
				t.Errorf("Stats().Sent = %+v, want Lost=%d Segments=%d Bytes=%d", sent, want, segments, segments)
			}
			if got := b.(*Conn).Stats().Received; got != sent {
				t.Errorf("peer Stats().Received = %+v, want %+v", got, sent)
			}
			if tt.loss == 0 || tt.loss == 1 {
				if wantAll := int64(tt.loss * segments); want != wantAll {
					t.Fatalf("replayed expectation %d, want %d", want, wantAll)
				}
			}
		})
	}
}

func TestLostSegmentHoldsBackTheStream(t *testing.T) {
	t.Parallel()
	// With Loss=1 every segment pays the RTO: a message takes ≥ MinRTO.
	a, b := Pipe(Profile{Loss: 1})
	defer a.Close()
	defer b.Close()
	start := time.Now()
	a.Write([]byte("x"))
	readN(t, b, 1)
	if elapsed := time.Since(start); elapsed < MinRTO {
		t.Errorf("lost segment arrived after %v, want ≥ RTO %v", elapsed, MinRTO)
	}

	// Model: a lost segment arrives ≥ RTO late and nothing behind it
	// overtakes it.
	p := Profile{Delay: 10 * time.Millisecond, Loss: 0.3, Seed: 5}
	l := newLink(p, 0)
	r := newLossRand(p.Seed, 0)
	base := time.Now()
	sawLoss := false
	for i := range 100 {
		now := base.Add(time.Duration(i) * time.Millisecond)
		l.schedule([]byte{1}, now)
		lost := r.Float64() < p.Loss
		at := l.segs[i].at
		if lost {
			sawLoss = true
			if min := now.Add(p.Delay + p.RTO()); at.Before(min) {
				t.Fatalf("lost segment %d arrives %v after write, want ≥ %v", i, at.Sub(now), p.Delay+p.RTO())
			}
		}
		if i > 0 && at.Before(l.segs[i-1].at) {
			t.Fatalf("segment %d overtakes segment %d", i, i-1)
		}
	}
	if !sawLoss {
		t.Fatal("seed 5 lost nothing; pick another seed")
	}
}

func TestDeadlines(t *testing.T) {
	t.Parallel()
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
	}
	tests := []struct {
		name     string
		p        Profile
		pipeOnly bool // Wrap's pump empties the window into the socket buffers
		run      func(t *testing.T, a, b net.Conn)
	}{
		{"read deadline in the past", Profile{}, false, func(t *testing.T, a, b net.Conn) {
			b.SetReadDeadline(time.Now().Add(-time.Second))
			if _, err := b.Read(make([]byte, 1)); !isTimeout(err) {
				t.Fatalf("Read = %v, want a timeout", err)
			}
		}},
		{"read deadline while data is in flight", Profile{Delay: 300 * time.Millisecond}, false, func(t *testing.T, a, b net.Conn) {
			a.Write([]byte("late"))
			start := time.Now()
			b.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			if _, err := b.Read(make([]byte, 4)); !isTimeout(err) {
				t.Fatalf("Read = %v, want a timeout", err)
			}
			if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
				t.Fatalf("timed out after %v, before the 30ms deadline", elapsed)
			}
			b.SetReadDeadline(time.Time{})
			if got := readN(t, b, 4); string(got) != "late" {
				t.Fatalf("after clearing the deadline read %q, want \"late\"", got)
			}
		}},
		{"deadline extended while blocked", Profile{}, false, func(t *testing.T, a, b net.Conn) {
			b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			b.SetReadDeadline(time.Now().Add(testTimeout))
			go func() {
				time.Sleep(60 * time.Millisecond)
				a.Write([]byte("y"))
			}()
			if _, err := b.Read(make([]byte, 1)); err != nil {
				t.Fatalf("Read with extended deadline = %v", err)
			}
		}},
		{"deadline moved to the past wakes a blocked read", Profile{}, false, func(t *testing.T, a, b net.Conn) {
			errc := make(chan error, 1)
			go func() {
				_, err := b.Read(make([]byte, 1))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			b.SetDeadline(time.Now())
			if err := waitErr(t, errc, "Read did not return after its deadline passed"); !isTimeout(err) {
				t.Fatalf("Read = %v, want a timeout", err)
			}
		}},
		{"write deadline with a full window", Profile{Window: 10}, true, func(t *testing.T, a, b net.Conn) {
			if _, err := a.Write(make([]byte, 10)); err != nil {
				t.Fatalf("first write: %v", err)
			}
			a.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
			n, err := a.Write(make([]byte, 10))
			if n != 0 || !isTimeout(err) {
				t.Fatalf("Write into a full window = %d, %v; want 0 and a timeout", n, err)
			}
			a.SetWriteDeadline(time.Time{})
			readN(t, b, 10)
			if _, err := a.Write(make([]byte, 10)); err != nil {
				t.Fatalf("write after the window drained: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := Pipe(tt.p)
			defer a.Close()
			defer b.Close()
			tt.run(t, a, b)
		})
		if tt.pipeOnly {
			continue
		}
		t.Run(tt.name+"/wrap", func(t *testing.T) {
			t.Parallel()
			x, y := testkit.TCPPair(t)
			a, b := Wrap(x, tt.p), Wrap(y, Profile{Window: tt.p.Window})
			defer a.Close()
			defer b.Close()
			tt.run(t, a, b)
		})
	}
}

func TestCloseSemantics(t *testing.T) {
	t.Parallel()
	t.Run("pending data then EOF", func(t *testing.T) {
		t.Parallel()
		a, b := Pipe(Profile{Delay: 30 * time.Millisecond})
		defer b.Close()
		a.Write([]byte("hello"))
		start := time.Now()
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := readN(t, b, 5); string(got) != "hello" {
			t.Fatalf("read %q after Close, want \"hello\"", got)
		}
		expectEOF(t, b)
		if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
			t.Errorf("EOF after %v, want ≥ Delay: the FIN crosses the link too", elapsed)
		}
		if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("write to a closed peer = %v, want io.ErrClosedPipe", err)
		}
	})
	t.Run("closed side", func(t *testing.T) {
		t.Parallel()
		a, b := Pipe(Profile{})
		defer b.Close()
		a.Close()
		if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read on closed conn = %v, want net.ErrClosed", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write on closed conn = %v, want net.ErrClosed", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close = %v, want net.ErrClosed", err)
		}
		if err := a.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("SetDeadline on closed conn = %v, want net.ErrClosed", err)
		}
	})
	t.Run("close unblocks read and write", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			a, b := Pipe(Profile{Window: 4})
			defer b.Close()
			a.Write(make([]byte, 4))
			errc := make(chan error, 2)
			go func() { _, err := a.Read(make([]byte, 1)); errc <- err }()
			go func() { _, err := a.Write(make([]byte, 4)); errc <- err }()
			synctest.Wait() // both calls are blocked
			select {
			case err := <-errc:
				t.Fatalf("a call returned before Close: %v", err)
			default:
			}
			a.Close()
			for range 2 {
				if err := waitErr(t, errc, "Close did not unblock a pending call"); !errors.Is(err, net.ErrClosed) {
					t.Errorf("blocked call returned %v, want net.ErrClosed", err)
				}
			}
		})
	})
	t.Run("half close", func(t *testing.T) {
		t.Parallel()
		a, b := Pipe(Profile{Delay: 5 * time.Millisecond})
		defer a.Close()
		defer b.Close()
		a.Write([]byte("req"))
		a.(*Conn).CloseWrite()
		readN(t, b, 3)
		expectEOF(t, b)
		b.Write([]byte("resp"))
		if got := readN(t, a, 4); string(got) != "resp" {
			t.Fatalf("read %q after CloseWrite, want \"resp\"", got)
		}
	})
}

func TestWrapCloseDeliversPendingDataThenEOF(t *testing.T) {
	t.Parallel()
	x, y := testkit.TCPPair(t)
	w := Wrap(x, Profile{Delay: 30 * time.Millisecond, Rate: 2_000_000})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	if _, err := w.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	w.Close()
	if got := readN(t, y, len(payload)); !bytes.Equal(got, payload) {
		t.Fatal("remote received different bytes than were written before Close")
	}
	expectEOF(t, y)
}

func TestWrapHalfCloseAndPeerEOF(t *testing.T) {
	t.Parallel()
	addr := echoServer(t)
	d := net.Dialer{Timeout: testTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial echo server: %v", err)
	}
	const delay = 15 * time.Millisecond
	w := Wrap(c, Profile{Delay: delay})
	defer w.Close()
	start := time.Now()
	w.Write([]byte("echo me"))
	if got := readN(t, w, 7); string(got) != "echo me" {
		t.Fatalf("echo = %q", got)
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Errorf("round trip took %v, want ≥ 2·Delay = %v", rtt, 2*delay)
	}
	w.(*Conn).CloseWrite()
	expectEOF(t, w) // the echo server saw our EOF and closed its side
}

func TestWrapWriteErrorReachesWriter(t *testing.T) {
	t.Parallel()
	x, y := testkit.TCPPair(t)
	w := Wrap(x, Profile{})
	defer w.Close()
	y.SetLinger(0)
	y.Close() // reset
	testkit.WaitFor(t, "a write to fail after the remote reset the connection", func() bool {
		_, err := w.Write(make([]byte, 1024))
		return err != nil
	})
}
