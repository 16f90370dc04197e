package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	kdclient "kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"

	"go.uber.org/goleak"
)

// The scaffolding the package's tests share: a kdsrv on loopback whose
// target links are in-memory pipes, and a raw wire client of it.

// TestMain checks that no test of the package leaves goroutines behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// simLink is one end of an in-memory pipe to a simulated target.
type simLink struct{ net.Conn }

func (simLink) String() string { return "sim pipe" }

// testServerOptions is what varies between the tests' servers.
type testServerOptions struct {
	transports []string // -t values; default: one TCP listener on a port of 41000-48999
	allow      []string // -allow patterns; default /kdsim/*
	// target, when set, makes every target link an in-memory pipe, as
	// targetlink.Open would open it (the allow list first): target
	// returns what serves the pipe's far end for ts, or an error when
	// there is no such target. serve runs on its own goroutine until it
	// returns or ctx ends (once the server has stopped).
	target func(ts *spec.Target) (serve func(ctx context.Context, conn net.Conn), err error)
	// config changes the Config last (time-outs, clock, metrics, logger).
	config func(*Config)
}

// testServer is a started kdsrv; the test's end stops it.
type testServer struct {
	*Server
	logs *testkit.Buffer // everything it logged (unless config replaced the logger)
	stop func()          // stops it now (once; later calls do nothing)
}

// startTestServer starts a kdsrv listening on 127.0.0.1 and serving. When
// the test ends it is shut down, the targets' goroutines are stopped and
// waited for, and a failed test shows its log.
func startTestServer(t testing.TB, o testServerOptions) *testServer {
	t.Helper()
	if o.transports == nil {
		o.transports = []string{"tcp:port=41000:48999"}
	}
	if o.allow == nil {
		o.allow = []string{"/kdsim/*"}
	}
	var trs []*spec.Transport
	for _, s := range o.transports {
		tr, err := spec.ParseServerTransport(s)
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, tr)
	}
	allow, err := targetlink.NewAllowList(o.allow, false)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{logs: &testkit.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cfg := Config{
		Transports:       trs,
		Allow:            allow,
		HandshakeTimeout: 5 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(ts.logs, nil)),
	}
	if o.target != nil {
		cfg.OpenTarget = func(octx context.Context, tgt *spec.Target, a *targetlink.AllowList) (kd.Endpoint, error) {
			if err := a.Check(tgt); err != nil {
				return nil, err
			}
			serve, err := o.target(tgt)
			if err != nil {
				return nil, err
			}
			near, far := net.Pipe()
			wg.Go(func() { serve(ctx, far) })
			return kd.NewHostLink(simLink{near}, linkHooks(octx)), nil
		}
	}
	if o.config != nil {
		o.config(&cfg)
	}
	cfg.Listen.BindHost = "127.0.0.1"
	s, err := New(cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); err != nil {
		cancel()
		t.Fatal(err)
	}
	ts.Server = s
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := s.Shutdown(sctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			<-served
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	return ts
}

// port is the port of the first listener.
func (ts *testServer) port() int { return ts.Addrs()[0].(*net.TCPAddr).Port }

// connect is the -k value that opens the target trans (a -k trans= value)
// through the first listener.
func (ts *testServer) connect(t testing.TB, trans string) *spec.Connect {
	t.Helper()
	c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{%s}", ts.port(), trans))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// findTarget is the open target whose port ends in /name (nil if none).
func (ts *testServer) findTarget(name string) *target {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.targets {
		if strings.HasSuffix(t.spec.Port, "/"+name) {
			return t
		}
	}
	return nil
}

// open opens the target trans as a raw wire client.
func (ts *testServer) open(t testing.TB, trans string) *wireClient {
	t.Helper()
	return openWireClient(t, ts.connect(t, trans))
}

// wireClient is a raw wire client with the target open: it sees every
// frame the server sends.
type wireClient struct {
	t      testing.TB
	info   string // the session info of Opened
	conn   *kdclient.Conn
	frames chan wire.Frame
	done   chan struct{}
}

// openWireClient connects to c.Server and opens c.Trans; the test's end
// closes the connection.
func openWireClient(t testing.TB, c *spec.Connect) *wireClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kdclient.Dial(ctx, c.Server, kdclient.Options{Logger: logx.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := conn.Open(ctx, c.Trans)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	wc := &wireClient{t: t, info: opened.Info, conn: conn, frames: make(chan wire.Frame, 256), done: make(chan struct{})}
	go func() {
		defer close(wc.done)
		defer close(wc.frames)
		for {
			f, err := conn.Wire().Recv()
			if err != nil {
				return
			}
			f.Payload = append([]byte(nil), f.Payload...)
			wc.frames <- f
		}
	}()
	t.Cleanup(wc.close)
	return wc
}

// close closes the connection and waits for the frame reader.
func (wc *wireClient) close() {
	wc.conn.Close()
	for range wc.frames {
	}
	<-wc.done
}

// next returns the next frame that want accepts. It fails the test if the
// server closes the connection or falls silent for 10 s first: every frame
// restarts the time-out.
func (wc *wireClient) next(want func(wire.Frame) bool, what string) wire.Frame {
	wc.t.Helper()
	const silence = 10 * time.Second
	timer := time.NewTimer(silence)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-wc.frames:
			if !ok {
				wc.t.Fatalf("the server closed the connection while waiting for %s", what)
			}
			if want(f) {
				return f
			}
			timer.Reset(silence)
		case <-timer.C:
			wc.t.Fatalf("no %s from the server within %v", what, silence)
		}
	}
}

// isFrame accepts the frames of type typ whose payload decodes to a value
// match accepts.
func isFrame[T any](typ wire.Type, decode func([]byte) (T, error), match func(T) bool) func(wire.Frame) bool {
	return func(f wire.Frame) bool {
		if f.Type != typ {
			return false
		}
		v, err := decode(f.Payload)
		return err == nil && match(v)
	}
}
