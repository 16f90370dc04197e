package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LimitConfig bounds how often one message may be logged: each distinct
// message (level and msg text) has a bucket of Burst lines that refills at
// one line per Every. Lines beyond it are dropped and counted; the next
// line of that message that gets through carries the count as the
// attribute "suppressed". So a flood (a client hammering the server with
// bad passwords, accept failing with "too many open files") costs a few
// lines a second, not the disk.
type LimitConfig struct {
	Burst int           // lines let through at once (default 20)
	Every time.Duration // one more line per Every (default 1s)
	// MinLevel is the lowest level limited (default info); lower ones
	// (debug lines, which an operator asked for with -v) pass untouched. Error
	// lines are never limited.
	MinLevel slog.Level
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
}

// The default limit: 20 lines at once, then one a second, per message,
// for info and warning lines (MinLevel's zero value is slog.LevelInfo).
const (
	DefaultBurst = 20
	DefaultEvery = time.Second
)

// maxLimitKeys bounds the memory of the limiter: messages are a fixed set
// in this code base, so reaching it means something is wrong; the table
// then starts afresh.
const maxLimitKeys = 4096

// Limit wraps h so that each message is logged at most as cfg allows.
func Limit(h slog.Handler, cfg LimitConfig) slog.Handler {
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &limitHandler{h: h, st: &limitState{cfg: cfg, buckets: make(map[limitKey]*Bucket)}}
}

type limitKey struct {
	level slog.Level
	msg   string
}

// Bucket is a token bucket that counts what it holds back: it lets Burst
// lines through at once and one more per Every, and reports, with the next
// line it lets through, how many it dropped. Limit keeps one per message;
// a caller with one stream of lines (a per-client log guard) can use one
// directly. It is not safe for concurrent use: callers hold a lock.
type Bucket struct {
	burst      float64
	every      time.Duration
	tokens     float64
	last       time.Time
	suppressed int
}

// NewBucket returns a full bucket of burst tokens, refilled at one per
// every from now on.
func NewBucket(burst int, every time.Duration, now time.Time) *Bucket {
	return &Bucket{burst: float64(burst), every: every, tokens: float64(burst), last: now}
}

// Allow takes a token at time now. It returns whether the line may go out
// and, if so, how many lines were dropped since the last one that did.
func (b *Bucket) Allow(now time.Time) (ok bool, suppressed int) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+float64(el)/float64(b.every))
		b.last = now
	}
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

type limitState struct {
	cfg     LimitConfig
	mu      sync.Mutex
	buckets map[limitKey]*Bucket
}

// allow takes a token for k; it returns whether the line may go out and
// how many lines of k were dropped since the last one that did.
func (s *limitState) allow(k limitKey) (bool, int) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[k]
	if b == nil {
		if len(s.buckets) >= maxLimitKeys {
			clear(s.buckets)
		}
		b = NewBucket(s.cfg.Burst, s.cfg.Every, now)
		s.buckets[k] = b
	}
	return b.Allow(now)
}

type limitHandler struct {
	h  slog.Handler
	st *limitState // shared by the handlers derived with WithAttrs/WithGroup
}

func (l *limitHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < l.st.cfg.MinLevel || r.Level >= slog.LevelError {
		return l.h.Handle(ctx, r)
	}
	ok, n := l.st.allow(limitKey{r.Level, r.Message})
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return l.h.Handle(ctx, r)
}

func (l *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{h: l.h.WithAttrs(as), st: l.st}
}

func (l *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{h: l.h.WithGroup(name), st: l.st}
}
