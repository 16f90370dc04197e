package server

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/spec"
)

// fakeClock is an injected clock for the limits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// try makes one password attempt from src with the given outcome; it
// returns the refusal, if the attempt was not allowed.
func try(g *guard, src string, o outcome) *refusal {
	if r := g.admit(src); r != nil {
		return r
	}
	g.done(src, o)
	return nil
}

// TestGuardEightWrongPasswords is the acceptance case: eight wrong
// passwords in a row from one address; the first four are free, 5–8 are
// refused as too many, and the right password works once the back-off has
// passed.
func TestGuardEightWrongPasswords(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{}, clk.Now)
	for i := 1; i <= 8; i++ {
		r := try(g, "192.0.2.7", authFailed)
		clk.Advance(10 * time.Millisecond)
		switch {
		case i <= 4 && r != nil:
			t.Fatalf("attempt %d refused (%s), want the first %d free", i, r.message(), DefaultFreeFailures)
		case i > 4 && (r == nil || r.busy):
			t.Fatalf("attempt %d allowed, want it refused as too many", i)
		case i > 4:
			if msg := r.message(); msg != "too many failed attempts; try again in 2 s" {
				t.Errorf("attempt %d: refusal %q", i, msg)
			}
		}
	}
	// Another address is not affected.
	if r := try(g, "192.0.2.8", authOK); r != nil {
		t.Errorf("another address refused: %s", r.message())
	}
	// Once the back-off has passed, the right password works and the
	// record is cleared: the next wrong password is free again.
	clk.Advance(2 * time.Second)
	if r := try(g, "192.0.2.7", authOK); r != nil {
		t.Fatalf("right password after the back-off refused: %s", r.message())
	}
	if r := try(g, "192.0.2.7", authFailed); r != nil {
		t.Errorf("a failure after a success is not free: %s", r.message())
	}
}

// TestGuardBackoffDoublesToCap: a guesser who waits out every back-off gets
// 2 s, 4 s, 8 s ... up to the 60 s cap; attempts 5–8 cost it at least 4 s
// in all, and the right password works at the latest 60 s after the last
// failure.
func TestGuardBackoffDoublesToCap(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{}, clk.Now)
	var waited time.Duration // before attempts 5–8
	var last time.Duration
	for i := 1; i <= 20; i++ {
		var wait time.Duration
		for {
			r := g.admit("198.51.100.1")
			if r == nil {
				break
			}
			if r.busy {
				t.Fatalf("attempt %d: busy, want a back-off", i)
			}
			wait += r.wait
			clk.Advance(r.wait)
		}
		if i >= 5 && i <= 8 {
			waited += wait
		}
		_, backoff := g.done("198.51.100.1", authFailed)
		if i >= 4 {
			want := min(DefaultBackoffBase<<(i-4), DefaultBackoffMax)
			if backoff != want {
				t.Errorf("failure %d: back-off %v, want %v", i, backoff, want)
			}
		}
		last = backoff
	}
	if waited < 4*time.Second {
		t.Errorf("attempts 5-8 waited %v in all, want at least 4s", waited)
	}
	if last != DefaultBackoffMax || last > 90*time.Second {
		t.Errorf("back-off after 20 failures = %v, want the %v cap (at most 90 s)", last, DefaultBackoffMax)
	}
	clk.Advance(last)
	if r := try(g, "198.51.100.1", authOK); r != nil {
		t.Errorf("right password %v after the last failure refused: %s", last, r.message())
	}
}

// TestGuardParallelAttempts: a source cannot get around the back-off by
// running attempts in parallel: at most its free failures at once, then one
// at a time.
func TestGuardParallelAttempts(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{}, clk.Now)
	for i := range DefaultFreeFailures {
		if r := g.admit("a"); r != nil {
			t.Fatalf("parallel attempt %d refused: %s", i+1, r.message())
		}
	}
	if r := g.admit("a"); r == nil || !r.busy || !strings.Contains(r.message(), "under way at once") {
		t.Fatalf("a fifth parallel attempt: %v, want busy", r)
	}
	for range DefaultFreeFailures {
		g.done("a", authFailed)
	}
	if r := g.admit("a"); r == nil {
		t.Fatal("attempt right after four failures admitted")
	}
	clk.Advance(DefaultBackoffBase)
	if r := g.admit("a"); r != nil {
		t.Fatalf("attempt after the back-off refused: %s", r.message())
	}
	if r := g.admit("a"); r == nil {
		t.Error("second parallel attempt past the free failures admitted")
	}
	// An attempt that ends without a password tried costs nothing.
	g.done("a", authNone)
	if r := g.admit("a"); r != nil {
		t.Errorf("attempt after a no-password ending refused: %s", r.message())
	}
}

// TestGuardServerWideCeiling: failures from many sources together are
// capped per second; a source that authenticated recently is exempt; the
// budget refills.
func TestGuardServerWideCeiling(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{FailuresPerSecond: 5}, clk.Now)
	if r := try(g, "good", authOK); r != nil {
		t.Fatal(r.message())
	}
	for i := range 5 {
		if r := try(g, fmt.Sprintf("10.0.0.%d", i), authFailed); r != nil {
			t.Fatalf("failure %d refused: %s", i, r.message())
		}
	}
	r := g.admit("10.0.1.1")
	if r == nil || r.busy || !strings.Contains(r.message(), "too many failed attempts on this server; try again in 1 s") {
		t.Fatalf("sixth source in the same second: %v, want refused server-wide", r)
	}
	if r := try(g, "good", authOK); r != nil {
		t.Errorf("a recently authenticated source was refused: %s", r.message())
	}
	clk.Advance(time.Second)
	if r := try(g, "10.0.1.1", authOK); r != nil {
		t.Errorf("after a second: %s", r.message())
	}
}

// TestGuardPreAuthCaps: the n+1-th unauthenticated connection from one
// source is refused as busy, others still get in; the server-wide cap holds
// for everyone; leaving frees a place.
func TestGuardPreAuthCaps(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{MaxPreAuth: 6, MaxPreAuthPerSource: 4}, clk.Now)
	for i := range 4 {
		if r := g.enter("127.0.0.2"); r != nil {
			t.Fatalf("connection %d refused: %s", i+1, r.message())
		}
	}
	r := g.enter("127.0.0.2")
	if r == nil || !r.busy || !strings.Contains(r.message(), "from your address") {
		t.Fatalf("fifth connection from one source: %v, want busy", r)
	}
	for i := range 2 {
		if r := g.enter("127.0.0.3"); r != nil {
			t.Fatalf("other source, connection %d refused: %s", i+1, r.message())
		}
	}
	if r := g.enter("127.0.0.4"); r == nil || !r.busy || !strings.Contains(r.message(), "the server has too many") {
		t.Fatalf("seventh connection in all: %v, want busy server-wide", r)
	}
	g.leave("127.0.0.2")
	if r := g.enter("127.0.0.4"); r != nil {
		t.Errorf("after one left: %s", r.message())
	}
	if r := g.enter("127.0.0.2"); r == nil {
		t.Error("full again, yet admitted")
	}
}

// TestGuardMemoryBounded: records of sources that have nothing left to say
// are dropped, and the number of records is bounded.
func TestGuardMemoryBounded(t *testing.T) {
	clk := newFakeClock()
	g := newGuard(Limits{FailuresPerSecond: -1}, clk.Now)
	for i := range maxSources + 100 {
		src := fmt.Sprintf("s%d", i)
		_ = try(g, src, authFailed)
		if r := g.enter(src); r == nil {
			g.leave(src)
		}
	}
	if n := len(g.src); n > maxSources {
		t.Errorf("%d source records, want at most %d", n, maxSources)
	}
	clk.Advance(DefaultForgetAfter)
	g.mu.Lock()
	g.prune(clk.Now())
	n := len(g.src)
	g.mu.Unlock()
	if n != 0 {
		t.Errorf("%d records left after ForgetAfter, want 0", n)
	}
	// A source with no failures leaves nothing behind.
	g2 := newGuard(Limits{}, clk.Now)
	_ = g2.enter("x")
	_ = try(g2, "x", authOK)
	g2.leave("x")
	if len(g2.src) != 0 {
		t.Errorf("a clean source left a record: %+v", g2.src)
	}
}

func TestLogLimiter(t *testing.T) {
	clk := newFakeClock()
	l := newLogLimiter(5, clk.Now)
	passed := 0
	for range 1000 {
		if ok, _ := l.allow(); ok {
			passed++
		}
	}
	if passed != logBurst {
		t.Errorf("%d lines of a burst of 1000 passed, want %d", passed, logBurst)
	}
	clk.Advance(time.Second)
	ok, left := l.allow()
	if !ok || left != 1000-logBurst {
		t.Errorf("after a second: ok=%v, %d left out; want true, %d", ok, left, 1000-logBurst)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "fake" }
func (a fakeAddr) String() string  { return string(a) }

type addrConn struct {
	net.Conn
	remote string
}

func (c addrConn) RemoteAddr() net.Addr { return fakeAddr(c.remote) }

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		proto  spec.Proto
		remote string
		want   string
	}{
		{spec.TCP, "192.0.2.1:50000", "192.0.2.1"},
		{spec.SSL, "[::ffff:192.0.2.1]:50000", "192.0.2.1"},
		{spec.TCP, "[2001:db8:1:2:3:4:5:6]:50000", "2001:db8:1:2::/64"},
		{spec.TCP, "[fe80::1%eth0]:50000", "fe80::/64"},
		{spec.NPipe, "uid 1000 pid 4242", "uid 1000"},
		{spec.SPipe, "uid 0 pid 1", "uid 0"},
		{spec.NPipe, "local pipe client", "local pipe"},
		{spec.COM, "com:/dev/ttyS0#3", "com com:/dev/ttyS0#3"},
	} {
		if got := sourceOf(addrConn{remote: tc.remote}, &spec.Transport{Proto: tc.proto}); got != tc.want {
			t.Errorf("sourceOf(%s %q) = %q, want %q", tc.proto, tc.remote, got, tc.want)
		}
	}
}
