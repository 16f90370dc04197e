package server

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestSendTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		defer cancelParent()
		st := newSendTimer()
		defer st.stop()

		// Armed and not disarmed in time: the send is cut short.
		a := newAbortCtx(parent)
		st.arm(a, time.Second)
		time.Sleep(999 * time.Millisecond)
		if a.Err() != nil {
			t.Fatalf("aborted before its time: %v", a.Err())
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if !errors.Is(a.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline = %v, want DeadlineExceeded", a.Err())
		}
		select {
		case <-a.Done():
		default:
			t.Fatal("Done not closed after the deadline")
		}

		// Disarmed in time: the context serves the next send.
		b := newAbortCtx(parent)
		for range 3 {
			st.arm(b, time.Second)
			time.Sleep(500 * time.Millisecond)
			st.disarm()
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if b.Err() != nil {
			t.Fatalf("a disarmed timer aborted the context: %v", b.Err())
		}

		// A callback that runs late (after a disarm and a new arm) does
		// not cut the new send short.
		st.arm(b, time.Hour)
		st.fire()
		if b.Err() != nil {
			t.Fatalf("a stale timer callback aborted the next send: %v", b.Err())
		}
		st.disarm()

		// Abandoned (a restart): Canceled.
		b.cancel()
		if !errors.Is(b.Err(), context.Canceled) {
			t.Fatalf("Err after cancel = %v, want Canceled", b.Err())
		}

		// The parent ending ends it; a released one is left alone.
		c, d := newAbortCtx(parent), newAbortCtx(parent)
		d.release()
		cancelParent()
		synctest.Wait()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err after the parent ended = %v, want Canceled", c.Err())
		}
		if d.Err() != nil {
			t.Fatalf("a released context followed its parent: %v", d.Err())
		}
	})
}
