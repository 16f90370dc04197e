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
	"kdsrv/internal/testkit"
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
				var logs testkit.Buffer
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

// A kernel that is waiting for the answer to a FILE_IO request when kdsrv
// attaches answers RESET by sending that request again, not a state
// change. kdsrv must answer it (nobody owns the target: with "no such
// file") as soon as the ids are agreed, or the kernel waits for ever and
// never reports its stop.
func TestAttachKernelWaitingForFileIO(t *testing.T) {
	var logs testkit.Buffer
	tr, err := spec.ParseServerTransport("tcp:port=5005")
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan kd.FileIO, 1)
	targetDone := make(chan struct{})
	s, err := New(Config{
		Transports:     []*spec.Transport{tr},
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
		AttachInterval: 20 * time.Millisecond,
		OpenTarget: func(context.Context, *spec.Target, *targetlink.AllowList) (kd.Endpoint, error) {
			a, z := net.Pipe()
			go func() {
				defer close(targetDone)
				var sends sync.WaitGroup
				defer sends.Wait()
				kernel := kd.NewTargetLink(z, kd.Config{AckTimeout: 20 * time.Millisecond})
				defer kernel.Close()
				ctx := context.Background()
				req := kd.FileIO{API: kd.APICreateFile}
				waiting := true // for the FILE_IO answer
				for {
					m, err := kernel.Recv(ctx)
					if err != nil {
						return
					}
					switch {
					case m.Kind == kd.MsgReset && waiting:
						// KdReceivePacket returns "resend": send the
						// request again.
						sends.Go(func() { _ = kernel.Send(ctx, kd.TypeFileIO, req.Append(nil)) })
					case m.Kind == kd.MsgPacket && m.Packet.Type == kd.TypeFileIO && waiting:
						f, _ := kd.DecodeFileIO(m.Packet.Payload)
						answered <- f
						waiting = false
					case waiting:
						// Break-in bytes are not looked at while the
						// kernel waits for its answer.
					case m.Kind == kd.MsgReset || m.Kind == kd.MsgBreakIn:
						sc := kd.StateChange{NewState: kd.StateException}
						sends.Go(func() { _ = kernel.Send(ctx, kd.TypeStateChange64, sc.Append(nil)) })
					}
				}
			}()
			return kd.NewHostLink(simLink{a}, kd.Config{}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := spec.ParseTarget("com:pipe,port=/x/vm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.acquireTarget(context.Background(), nil, ts, false); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-answered:
		if f.API != kd.APICreateFile || f.Status != kd.StatusNoSuchFile {
			t.Errorf("the kernel got %+v, want CreateFile refused with STATUS_NO_SUCH_FILE", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the FILE_IO request was never answered; log:\n%s", logs.String())
	}
	testkit.WaitFor(t, "the target synchronised", func() bool { return strings.Contains(logs.String(), "target synchronised") })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-targetDone
}
