package logx

import (
	"testing"
	"time"
)

// TestBucket: a burst goes through, then one line per interval, and the
// line after a gap carries the count of the lines dropped before it.
func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := NewBucket(2, time.Second, t0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{0, true, 0},
		{0, false, 0},
		{500 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{time.Second, false, 0},
		{10 * time.Second, true, 1}, // refilled to the burst, not beyond
		{10 * time.Second, true, 0},
		{10 * time.Second, false, 0},
	}
	for i, s := range steps {
		ok, n := b.Allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d at +%v: Allow = %v, %d; want %v, %d", i, s.at, ok, n, s.ok, s.suppressed)
		}
	}
}
