package server

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
)

// Limits protects the server against password guessing and connection
// floods (docs/security.md, "Guessing and floods"). Zero fields take the
// defaults noted; a negative value switches that limit off.
type Limits struct {
	// FreeFailures is how many failed password attempts a source may make
	// in a row before it has to wait (default 4).
	FreeFailures int
	// BackoffBase is the wait after the failure that uses up the free
	// ones; every further failure doubles it (default 2s) ...
	BackoffBase time.Duration
	// ... up to BackoffMax (default 60s). The right password works again
	// once the wait has passed.
	BackoffMax time.Duration
	// ForgetAfter is how long after its last failure a source's record is
	// dropped (default 15m).
	ForgetAfter time.Duration
	// FailuresPerSecond is the server-wide ceiling on failed password
	// attempts per second, from all sources together (default 10). While it
	// is exceeded, password attempts are refused, except from sources that
	// authenticated successfully within the last GoodFor.
	FailuresPerSecond float64
	// GoodFor is how long a source that authenticated is exempt from the
	// server-wide ceiling (default 1h).
	GoodFor time.Duration
	// MaxPreAuth caps the connections that have not finished
	// authenticating, from all sources together (default 512, or a quarter
	// of the process's descriptor limit when that is lower, so that a flood
	// cannot run the server out of descriptors).
	MaxPreAuth int
	// MaxPreAuthPerSource caps them per source (default 16).
	MaxPreAuthPerSource int
	// LogPerSecond is how many refusal and failure log lines per second
	// the server writes at most (default 5, bursts of 20); the next line
	// that gets through says how many were left out.
	LogPerSecond float64
}

// Defaults of Limits.
const (
	DefaultFreeFailures        = 4
	DefaultBackoffBase         = 2 * time.Second
	DefaultBackoffMax          = 60 * time.Second
	DefaultForgetAfter         = 15 * time.Minute
	DefaultFailuresPerSecond   = 10
	DefaultGoodFor             = time.Hour
	DefaultMaxPreAuth          = 512
	DefaultMaxPreAuthPerSource = 16
	DefaultLogPerSecond        = 5
	logBurst                   = 20
	// maxSources bounds the per-source records (failures, connections,
	// recent successes) so that a flood from many addresses cannot grow
	// memory without bound. Beyond it, new sources are not tracked one by
	// one; the server-wide limits still hold.
	maxSources = 65536
)

func (l *Limits) setDefaults() {
	orDefault(&l.FreeFailures, DefaultFreeFailures)
	orDefault(&l.BackoffBase, DefaultBackoffBase)
	orDefault(&l.BackoffMax, DefaultBackoffMax)
	l.BackoffMax = max(l.BackoffMax, l.BackoffBase)
	orDefault(&l.ForgetAfter, DefaultForgetAfter)
	orDefault(&l.FailuresPerSecond, DefaultFailuresPerSecond)
	orDefault(&l.GoodFor, DefaultGoodFor)
	if l.MaxPreAuth == 0 {
		l.MaxPreAuth = DefaultMaxPreAuth
		if n := fdLimit() / 4; n > 0 && n < l.MaxPreAuth {
			l.MaxPreAuth = max(n, 8)
		}
	}
	orDefault(&l.MaxPreAuthPerSource, DefaultMaxPreAuthPerSource)
	orDefault(&l.LogPerSecond, DefaultLogPerSecond)
}

// orDefault sets *v to def when it is zero (not set).
func orDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// orPositive sets *v to def when it is zero or negative.
func orPositive[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// outcome is how an authentication attempt ended.
type outcome int

const (
	authNone   outcome = iota // no password was tried (the client left, timed out, or spoke no protocol)
	authOK                    // the right password
	authFailed                // a wrong password proof
)

// srcState is what the guard remembers of one source.
type srcState struct {
	fails    int       // failed attempts in a row
	until    time.Time // no attempt before this
	lastFail time.Time
	pending  int // attempts under way (handshakes on password transports)
	preAuth  int // connections not yet authenticated
}

// guard applies Limits: the password-guessing throttle and the caps on
// unauthenticated connections. Its clock is injectable for tests.
type guard struct {
	lim Limits
	now func() time.Time

	mu      sync.Mutex
	src     map[string]*srcState
	good    map[string]time.Time // sources that authenticated, and when
	preAuth int                  // unauthenticated connections in all
	tokens  float64              // server-wide failure budget
	refill  time.Time            // when tokens was last topped up
}

func newGuard(lim Limits, now func() time.Time) *guard {
	lim.setDefaults()
	return &guard{
		lim:    lim,
		now:    now,
		src:    make(map[string]*srcState),
		good:   make(map[string]time.Time),
		tokens: failureBurst(lim.FailuresPerSecond),
		refill: now(),
	}
}

// failureBurst is the size of the server-wide failure budget.
func failureBurst(rate float64) float64 { return math.Max(1, rate) }

// refusal says why a connection was turned away.
type refusal struct {
	busy  bool          // a connection cap (wire.Busy), else too many failures (wire.TooManyAttempts)
	wait  time.Duration // when to try again (TooManyAttempts)
	scope string        // "this source", "the server"
}

// message is the text for the client.
func (r *refusal) message() string {
	if r.busy {
		switch r.scope {
		case "attempts":
			return "too many password attempts from your address are under way at once; let them finish, then try again"
		case "the server":
			return "the server has too many connections that have not authenticated yet; try again in a few seconds"
		}
		return "too many connections from your address have not authenticated yet; finish or close them, then try again"
	}
	secs := int(math.Ceil(r.wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	if r.scope == "the server" {
		return fmt.Sprintf("too many failed attempts on this server; try again in %d s", secs)
	}
	return fmt.Sprintf("too many failed attempts; try again in %d s", secs)
}

// state returns the record of source, creating it if there is room. It
// drops records that have nothing left to say. Call with g.mu held.
func (g *guard) state(source string, now time.Time) *srcState {
	st := g.src[source]
	if st != nil {
		if st.pending == 0 && st.preAuth == 0 && st.fails > 0 && now.Sub(st.lastFail) >= g.lim.ForgetAfter && !now.Before(st.until) {
			st.fails = 0
		}
		return st
	}
	if len(g.src) >= maxSources {
		g.prune(now)
		if len(g.src) >= maxSources {
			return nil
		}
	}
	st = &srcState{}
	g.src[source] = st
	return st
}

// prune drops records that hold nothing. Call with g.mu held.
func (g *guard) prune(now time.Time) {
	for k, st := range g.src {
		if g.idle(st, now) {
			delete(g.src, k)
		}
	}
	for k, t := range g.good {
		if now.Sub(t) >= g.lim.GoodFor {
			delete(g.good, k)
		}
	}
}

// idle reports whether a record can be forgotten.
func (g *guard) idle(st *srcState, now time.Time) bool {
	return st.pending == 0 && st.preAuth == 0 && !now.Before(st.until) &&
		(st.fails == 0 || now.Sub(st.lastFail) >= g.lim.ForgetAfter)
}

// release forgets st if it is idle. Call with g.mu held.
func (g *guard) release(source string, st *srcState, now time.Time) {
	if st != nil && g.idle(st, now) && st.fails == 0 {
		delete(g.src, source)
	}
}

// enter admits a new connection from source before it authenticates, or
// refuses it when a connection cap is reached. Every admitted connection
// must be matched by one leave.
func (g *guard) enter(source string) *refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lim.MaxPreAuth > 0 && g.preAuth >= g.lim.MaxPreAuth {
		return &refusal{busy: true, scope: "the server"}
	}
	st := g.state(source, g.now())
	if st != nil && g.lim.MaxPreAuthPerSource > 0 && st.preAuth >= g.lim.MaxPreAuthPerSource {
		return &refusal{busy: true, scope: "this source"}
	}
	g.preAuth++
	if st != nil {
		st.preAuth++
	}
	return nil
}

// leave ends a connection's unauthenticated phase (it authenticated, or
// it is gone).
func (g *guard) leave(source string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.preAuth--
	if st := g.src[source]; st != nil && st.preAuth > 0 {
		st.preAuth--
		g.release(source, st, g.now())
	}
}

// topUp refills the server-wide failure budget. Call with g.mu held.
func (g *guard) topUp(now time.Time) {
	if g.lim.FailuresPerSecond < 0 {
		return
	}
	if dt := now.Sub(g.refill); dt > 0 {
		g.tokens = math.Min(failureBurst(g.lim.FailuresPerSecond), g.tokens+dt.Seconds()*g.lim.FailuresPerSecond)
	}
	g.refill = now
}

// admit reserves a password attempt for source, or refuses it: the source
// is waiting out its back-off, it already has as many attempts under way as
// it has free failures left, or the server-wide failure budget is spent.
// Every admitted attempt must be matched by one done.
func (g *guard) admit(source string) *refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	st := g.state(source, now)
	if st != nil && g.lim.FreeFailures > 0 {
		if now.Before(st.until) {
			return &refusal{wait: st.until.Sub(now), scope: "this source"}
		}
		if st.fails+st.pending >= g.lim.FreeFailures && st.pending > 0 {
			// A source has at most its free failures left under way at
			// once, and past them one attempt at a time, so parallel
			// connections do not multiply its guesses.
			return &refusal{busy: true, scope: "attempts"}
		}
	}
	g.topUp(now)
	if g.lim.FailuresPerSecond > 0 && g.tokens < 1 {
		if t, ok := g.good[source]; !ok || now.Sub(t) >= g.lim.GoodFor {
			wait := time.Duration((1 - g.tokens) / g.lim.FailuresPerSecond * float64(time.Second))
			return &refusal{wait: wait, scope: "the server"}
		}
	}
	if st != nil {
		st.pending++
	}
	return nil
}

// done records how an admitted attempt ended and returns the source's
// failures in a row and its back-off (zero while failures are free).
func (g *guard) done(source string, o outcome) (fails int, backoff time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	st := g.src[source]
	if st != nil && st.pending > 0 {
		st.pending--
	}
	switch o {
	case authOK:
		if st != nil {
			st.fails, st.until = 0, time.Time{}
		}
		if _, ok := g.good[source]; ok || len(g.good) < maxSources {
			g.good[source] = now
		}
	case authFailed:
		g.topUp(now)
		if g.lim.FailuresPerSecond > 0 {
			g.tokens = math.Max(g.tokens-1, -failureBurst(g.lim.FailuresPerSecond))
		}
		if st == nil {
			return 0, 0
		}
		st.fails++
		st.lastFail = now
		if n := st.fails - g.lim.FreeFailures; g.lim.FreeFailures > 0 && n >= 0 {
			backoff = g.lim.BackoffMax
			if n < 30 {
				backoff = min(g.lim.BackoffBase<<n, g.lim.BackoffMax)
			}
			st.until = now.Add(backoff)
		}
		return st.fails, backoff
	}
	if st != nil {
		g.release(source, st, now)
		return st.fails, 0
	}
	return 0, 0
}

// sourceOf names where a connection comes from, for the limits: what one
// party controls. On tcp and ssl it is the peer's IP address (an IPv6
// address counts by its /64 network, which one host usually has to
// itself); on npipe and spipe on Linux, macOS and FreeBSD the peer's user id (peer credentials;
// a pipe client whose credentials cannot be read counts with all others as
// "local pipe"); on Windows every client of a pipe counts as one source;
// on com every client of one channel counts as one source (the line is
// the only thing that tells clients apart).
func sourceOf(nc net.Conn, t *spec.Transport) string {
	ra := ""
	if a := nc.RemoteAddr(); a != nil {
		ra = a.String()
	}
	switch t.Proto {
	case spec.TCP, spec.SSL:
		host, _, err := net.SplitHostPort(ra)
		if err != nil {
			host = ra
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return "tcp " + host
		}
		ip = ip.Unmap().WithZone("")
		if ip.Is6() {
			p, _ := ip.Prefix(64)
			return p.String()
		}
		return ip.String()
	case spec.NPipe, spec.SPipe:
		// Outside Windows the pipe's remote address is "uid U pid P"
		// (package transport); the user is the source.
		if rest, ok := strings.CutPrefix(ra, "uid "); ok {
			uid, _, _ := strings.Cut(rest, " ")
			return "uid " + uid
		}
		return "local pipe"
	case spec.COM:
		return "com " + ra
	}
	return string(t.Proto) + " " + ra
}

// logLimiter lets through at most rate lines per second (bursts of
// logBurst) and counts the ones it held back, so that a flood of refusals
// cannot fill a disk. All the server's refusal lines share its one bucket.
type logLimiter struct {
	now func() time.Time
	mu  sync.Mutex
	b   *logx.Bucket // nil: no limit (a negative rate)
}

func newLogLimiter(rate float64, now func() time.Time) *logLimiter {
	l := &logLimiter{now: now}
	if rate >= 0 {
		l.b = logx.NewBucket(logBurst, time.Duration(float64(time.Second)/rate), now())
	}
	return l
}

// allow reports whether a line may be written now, and how many lines were
// held back since the last one that was.
func (l *logLimiter) allow() (ok bool, suppressed int) {
	if l.b == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Allow(l.now())
}
