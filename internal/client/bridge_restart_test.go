package client

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// fakeServer is the server's end of one session, played by the test.
type fakeServer struct {
	wc     *wire.Conn
	frames chan wire.Frame
}

func startFakeSession(t *testing.T) (*Conn, *fakeServer) {
	t.Helper()
	a, z := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvc := make(chan *wire.Conn, 1)
	go func() {
		wc, err := wire.Server(ctx, z, wire.Config{Software: "fake"})
		if err != nil {
			t.Error(err)
			z.Close()
		}
		srvc <- wc
	}()
	tr, err := spec.ParseClientTransport("tcp:server=127.0.0.1,port=5005")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(ctx, tr, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dial:   func(context.Context, *spec.Transport) (net.Conn, error) { return a, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{wc: <-srvc, frames: make(chan wire.Frame, 64)}
	if fs.wc == nil {
		t.FailNow()
	}
	go func() {
		defer close(fs.frames)
		for {
			f, err := fs.wc.Recv()
			if err != nil {
				return
			}
			f.Payload = append([]byte(nil), f.Payload...)
			fs.frames <- f
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		fs.wc.Close()
		for range fs.frames {
		}
	})
	return conn, fs
}

func (fs *fakeServer) next(t *testing.T, want wire.Type) wire.Frame {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-fs.frames:
			if !ok {
				t.Fatalf("the client closed the connection while the server waited for %s", want)
			}
			if f.Type == want {
				return f
			}
		case <-timer.C:
			t.Fatalf("no %s from the client within 10s", want)
		}
	}
}

// A debugger stopped in the target through the bridge, and the target
// restarts (StateReconnected): the bridge forgets the old stop and breaks
// in, so that its debugger, which believes the target stopped, gets the new
// boot's stop instead of waiting for answers a running kernel never gives.
func TestBridgeBreaksInAfterRestartUnderAStoppedDebugger(t *testing.T) {
	conn, fs := startFakeSession(t)
	target, err := spec.ParseTarget("com:pipe,port=/x/vm")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		_, err := conn.Open(ctx, target)
		opened <- err
	}()
	fs.next(t, wire.TypeOpen)
	if err := fs.wc.Send(wire.TypeOpened, wire.EncodeOpened(wire.Opened{Session: 1, Info: "fake"})); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	b := NewBridge(conn)
	b.OnState(func(wire.State) {})
	runDone := make(chan error, 1)
	rctx, stopRun := context.WithCancel(context.Background())
	go func() { runDone <- b.Run(rctx) }()
	defer func() {
		stopRun()
		<-runDone
	}()
	h, stop := b.Host(ctx, kd.HostOptions{AttachInterval: 50 * time.Millisecond})
	defer stop()
	oldStop := kd.StateChange{NewState: kd.StateException, ProgramCounter: 0x1000}
	attached := make(chan error, 1)
	go func() {
		_, err := h.Attach(ctx)
		attached <- err
	}()
	fs.next(t, wire.TypeBreakIn) // the debugger's break-in goes to the server
	if err := fs.wc.SendKD(uint16(kd.TypeStateChange64), oldStop.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	// The target restarts.
	if err := fs.wc.Send(wire.TypeState, wire.EncodeState(wire.State{State: wire.StateReconnected, Text: "rebooted"})); err != nil {
		t.Fatal(err)
	}
	fs.next(t, wire.TypeBreakIn) // the bridge asks for the new boot's stop
	newStop := kd.StateChange{NewState: kd.StateException, ProgramCounter: 0x2000}
	if err := fs.wc.SendKD(uint16(kd.TypeStateChange64), newStop.Append(nil)); err != nil {
		t.Fatal(err)
	}
	// (A copy of the old stop the debugger's own attach asked for may
	// still be on its way; the new one follows.)
	for i := 0; ; i++ {
		sc, err := h.WaitStateChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sc.ProgramCounter == 0x2000 {
			break
		}
		if i == 3 {
			t.Fatalf("the debugger got %#x; want the new boot's stop at 0x2000", sc.ProgramCounter)
		}
	}
	if halted, sc := b.state(); !halted || len(sc) == 0 {
		t.Fatal("the bridge did not keep the new stop")
	}
}
