package discovery

import (
	"net/netip"
	"sync"
	"time"
)

// maxLimiterSources bounds how many per-source buckets the responder keeps.
// Past it, idle (fully refilled) buckets are dropped and, if that is not
// enough, new sources share one overflow bucket.
const maxLimiterSources = 4096

// bucket is one token bucket.
type bucket struct {
	tokens   float64
	last     time.Time
	busySent time.Time // last "busy" reply to this source
}

// take refills b at rate tokens/s up to burst and takes one token.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// limiter rate-limits queries per source (an IPv4 address or an IPv6 /64)
// and overall.
type limiter struct {
	mu       sync.Mutex
	rate     float64 // per-source tokens per second
	burst    float64 // per-source bucket size
	sources  map[netip.Addr]*bucket
	overflow bucket // shared by new sources while the map is full
	global   bucket // all sources together
	grate    float64
	gburst   float64
}

func newLimiter(rate float64, burst int, grate float64, gburst int) *limiter {
	l := &limiter{
		rate: rate, burst: float64(burst),
		grate: grate, gburst: float64(gburst),
		sources: make(map[netip.Addr]*bucket),
	}
	l.overflow.tokens = l.burst
	l.global.tokens = l.gburst
	return l
}

// sourceKey maps an address to its rate-limit key: IPv4 addresses as they
// are, IPv6 addresses by their /64 (one host usually owns a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// allow reports whether a query from src may be answered now. When it may
// not, notify says whether to send a (small) busy reply: at most one per
// source per second.
func (l *limiter) allow(src netip.Addr, now time.Time) (ok, notify bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := sourceKey(src)
	b := l.sources[key]
	if b == nil {
		if len(l.sources) >= maxLimiterSources {
			l.sweep(now)
		}
		if len(l.sources) >= maxLimiterSources {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.sources[key] = b
		}
	}
	if !b.take(now, l.rate, l.burst) {
		if now.Sub(b.busySent) >= time.Second {
			b.busySent = now
			return false, true
		}
		return false, false
	}
	if !l.global.take(now, l.grate, l.gburst) {
		return false, false
	}
	return true, false
}

// sweep drops buckets that have refilled completely: forgetting them
// changes nothing.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.sources {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst && now.Sub(b.busySent) >= time.Second {
			delete(l.sources, k)
		}
	}
}
