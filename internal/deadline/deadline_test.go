package deadline

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New()
		if d.Expired() {
			t.Fatal("a new deadline has expired")
		}
		// A future deadline expires when its time comes, not before.
		d.Set(time.Now().Add(time.Second))
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if d.Expired() {
			t.Fatal("expired before its time")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !d.Expired() {
			t.Fatal("not expired at its time")
		}
		// Moving an expired deadline into the future (or clearing it)
		// gives a fresh channel.
		d.Set(time.Now().Add(time.Second))
		if d.Expired() {
			t.Fatal("still expired after being moved into the future")
		}
		d.Set(time.Time{})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if d.Expired() {
			t.Fatal("a cleared deadline expired")
		}
		// A past deadline expires at once; setting it again keeps it so.
		d.Set(time.Now().Add(-time.Second))
		if !d.Expired() {
			t.Fatal("a past deadline has not expired")
		}
		d.Set(time.Now().Add(-time.Second))
		if !d.Expired() {
			t.Fatal("a past deadline set twice has not expired")
		}
		// Stop keeps a pending deadline from expiring.
		d.Set(time.Now().Add(time.Second))
		w := d.Wait()
		d.Stop()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case <-w:
			t.Fatal("a stopped deadline expired")
		default:
		}
	})
}

// TestDeadlineWakesWaiter: a goroutine blocked on Wait wakes when the
// deadline passes, also after the deadline was moved while it waited on
// the old channel's replacement.
func TestDeadlineWakesWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New()
		d.Set(time.Now().Add(time.Hour))
		w := d.Wait()
		d.Set(time.Now().Add(time.Minute)) // same channel: it has not expired
		start := time.Now()
		<-w
		if got := time.Since(start); got != time.Minute {
			t.Fatalf("woke after %v, want 1m", got)
		}
	})
}
