package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
)

// silentTarget is a line on which nothing answers: it counts the break-in
// bytes and RESET packets kdsrv sends.
type silentTarget struct {
	mu      sync.Mutex
	breaks  int
	resets  int
	dec     kd.Decoder
	stopped chan struct{}
}

func (st *silentTarget) read(c net.Conn) {
	defer close(st.stopped)
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		st.mu.Lock()
		st.dec.Feed(buf[:n])
		for {
			f, ok := st.dec.Next()
			if !ok {
				break
			}
			switch {
			case f.Kind == kd.FrameBreakIn:
				st.breaks++
			case f.Packet.Type == kd.TypeReset:
				st.resets++
			}
		}
		st.mu.Unlock()
	}
}

func (st *silentTarget) counts() (breaks, resets int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.breaks, st.resets
}

// The server's synchronisation schedule, on a fake clock: a break-in and
// a RESET every second, the client told after 10 attempts, then a slower
// pace; with resets=N at most N RESETs and break-ins only after them.
func TestAttachScheduleOnTheClock(t *testing.T) {
	cases := []struct {
		trans          string
		after          time.Duration
		breaks, resets int
	}{
		// t=0..9: 10 attempts at 1 s; then every 5 s: t=10,15,20,25.
		{"com:pipe,port=/x/vm", 27 * time.Second, 14, 14},
		// 3 RESETs at t=0,1,2; then break-ins alone at t=3,8,13,18,23.
		{"com:pipe,port=/x/vm,resets=3", 24 * time.Second, 8, 3},
		// a break-in and a RESET every second, t=0..26.
		{"com:pipe,port=/x/vm,resets=0", 26500 * time.Millisecond, 27, 27},
	}
	for _, tc := range cases {
		t.Run(tc.trans, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &silentTarget{stopped: make(chan struct{})}
				var logs lcLogBuffer
				tr, err := spec.ParseServerTransport("tcp:port=5005")
				if err != nil {
					t.Fatal(err)
				}
				s, err := New(Config{
					Transports: []*spec.Transport{tr},
					Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
					OpenTarget: func(context.Context, *spec.Target, *targetlink.AllowList) (kd.Endpoint, error) {
						a, z := net.Pipe()
						go st.read(z)
						return kd.NewHostLink(simLink{a}, kd.Config{}), nil
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				ts, err := spec.ParseTarget(tc.trans)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.acquireTarget(context.Background(), nil, ts, false); err != nil {
					t.Fatal(err)
				}
				time.Sleep(tc.after)
				synctest.Wait()
				breaks, resets := st.counts()
				if breaks != tc.breaks || resets != tc.resets {
					t.Errorf("after %v: %d break-ins and %d RESETs, want %d and %d", tc.after, breaks, resets, tc.breaks, tc.resets)
				}
				if n := strings.Count(logs.String(), "does not answer break-in and RESET"); n != 1 {
					t.Errorf("not-responding logged %d times, want once:\n%s", n, logs.String())
				}
				if err := s.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				<-st.stopped
			})
		})
	}
}
