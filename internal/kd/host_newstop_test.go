package kd_test

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kd/kdtest"
)

// A stop reported while the Host waits for a reply means the target did not
// take the request: it was running when the request went out (it rebooted,
// or the request raced a break-in), or it was sending that stop again and
// dropped the request meanwhile. The Host sends the request again at once,
// rather than after CallTimeout. A DbgPrint is no such news.
func TestHostResendsOnNewStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stop    bool // the target sends a stop instead of a reply (else a DbgPrint)
		atOnce  bool
		timeout time.Duration
	}{
		{"new stop", true, true, 3 * time.Second},
		{"a print", false, false, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, tl, ctx := hostAndTarget(t, kd.HostOptions{CallTimeout: tc.timeout})
				first := kdtest.Breakpoint(0xfffff80000001000)
				go tl.Send(ctx, kd.TypeStateChange64, first.Append(nil))
				if _, err := h.WaitStateChange(ctx); err != nil {
					t.Fatal(err)
				}
				target := make(chan error, 1)
				go func() {
					// The first request is lost on a running kernel; the
					// target reports a stop instead, then answers.
					if _, err := tl.Recv(ctx); err != nil {
						target <- err
						return
					}
					pr := kd.NewPrintString([]byte("hello\n"))
					typ, payload := kd.TypeDebugIO, pr.Append(nil)
					if tc.stop {
						sc := kdtest.Breakpoint(0xfffff80000002000)
						typ, payload = kd.TypeStateChange64, sc.Append(nil)
					}
					if err := tl.Send(ctx, typ, payload); err != nil {
						target <- err
						return
					}
					m, err := tl.Recv(ctx)
					if err != nil {
						target <- err
						return
					}
					req, err := kd.DecodeManipulate(m.Packet.Payload)
					if err != nil {
						target <- err
						return
					}
					rep := kdtest.Reply(req, kd.Version{MinorVersion: 19045})
					target <- tl.Send(ctx, kd.TypeStateManipulate, rep.Append(nil))
				}()
				start := time.Now()
				v, err := h.Version(ctx)
				if err != nil || v.MinorVersion != 19045 {
					t.Fatalf("version %+v, %v", v, err)
				}
				if err := <-target; err != nil {
					t.Fatal(err)
				}
				// synctest's clock: no real time, no flakiness.
				took := time.Since(start)
				if tc.atOnce && took >= tc.timeout {
					t.Fatalf("answered after %v: the request waited for CallTimeout after the new stop", took)
				}
				if !tc.atOnce && took < tc.timeout {
					t.Fatalf("answered after %v: a print made the Host send the request again", took)
				}
			})
		})
	}
}

// Break repeats the break-in every AttachInterval until the target stops:
// a target that misses the first one (a byte lost on the line) stops on
// the next.
func TestHostBreakRepeatsBreakIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, tl, ctx := hostAndTarget(t, kd.HostOptions{AttachInterval: time.Second})
		target := make(chan error, 1)
		go func() {
			seen := 0
			for {
				m, err := tl.Recv(ctx)
				if err != nil {
					target <- err
					return
				}
				if m.Kind != kd.MsgBreakIn {
					continue
				}
				if seen++; seen == 2 { // the first one is lost
					sc := kdtest.Breakpoint(0xfffff80000003000)
					target <- tl.Send(ctx, kd.TypeStateChange64, sc.Append(nil))
					return
				}
			}
		}()
		sc, err := h.Break(ctx)
		if err != nil || sc.ProgramCounter != 0xfffff80000003000 {
			t.Fatalf("break: %+v %v", sc, err)
		}
		if err := <-target; err != nil {
			t.Fatal(err)
		}
	})
}

// hostAndTarget returns a Host on one end of a net.Pipe, the target link on
// the other, and a context for the test; all end with the test (inside a
// synctest bubble: its clock).
func hostAndTarget(t *testing.T, opts kd.HostOptions) (*kd.Host, *kd.Link, context.Context) {
	t.Helper()
	a, b := net.Pipe()
	h := kd.NewHost(kd.NewHostLink(a, kd.Config{}), opts)
	tl := kd.NewTargetLink(b, kd.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(func() {
		cancel()
		h.Link().Close()
		tl.Close()
	})
	return h, tl, ctx
}
