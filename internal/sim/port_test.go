package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/testkit"
)

func TestParsePort(t *testing.T) {
	cases := []struct{ in, network, address, err string }{
		{in: "unix:/tmp/x.sock", network: NetworkUnix, address: "/tmp/x.sock"},
		{in: "UNIX:/tmp/a:b", network: NetworkUnix, address: "/tmp/a:b"},
		{in: "tcp:127.0.0.1:5555", network: NetworkTCP, address: "127.0.0.1:5555"},
		{in: "tcp:[::1]:0", network: NetworkTCP, address: "[::1]:0"},
		{in: "tcp::5555", network: NetworkTCP, address: ":5555"},
		{in: "Tcp:localhost:65535", network: NetworkTCP, address: "localhost:65535"},
		{in: "pty", network: NetworkPTY},
		{in: "PTY", network: NetworkPTY},
		{in: "", err: "unknown kind"},
		{in: "/tmp/x.sock", err: "unknown kind"},
		{in: "com:1", err: "unknown kind"},
		{in: "unix:", err: "socket path"},
		{in: "pty:/dev/pts/1", err: "no address"},
		{in: "tcp:127.0.0.1", err: "HOST:PORT"},
		{in: "tcp:127.0.0.1:http", err: "not a number"},
		{in: "tcp:127.0.0.1:65536", err: "not a number"},
		{in: "tcp:127.0.0.1:-1", err: "not a number"},
		{in: "tcp:127.0.0.1:", err: "not a number"},
	}
	for _, c := range cases {
		n, a, err := ParsePort(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParsePort(%q) error %v; want one containing %q", c.in, err, c.err)
		case c.err == "" && (err != nil || n != c.network || a != c.address):
			t.Errorf("ParsePort(%q) = %q, %q, %v; want %q, %q", c.in, n, a, err, c.network, c.address)
		}
	}
}

// logLines collects the lines of PortOptions.Logger.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

// Write takes one line (a slog handler writes each record at once).
func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// startEndpoint runs an endpoint function in the background, waits for its
// Ready address, and registers a stop that cancels it and expects nil.
func startEndpoint(t *testing.T, run func(ctx context.Context, opts PortOptions) error, opts PortOptions) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	opts.Ready = func(a string) { ready <- a }
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("endpoint returned %v after cancel; want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("endpoint did not stop within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("endpoint failed before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("endpoint never reported ready")
	}
	return addr, stop
}

func fastHost(t *testing.T, conn io.ReadWriteCloser) *kd.Host {
	return newHost(t, conn, kd.HostOptions{AttachInterval: 200 * time.Millisecond, CallTimeout: 2 * time.Second})
}

// attachAndRead attaches h, checks the version, and reads the pattern
// region, as a debugger's first steps do.
func attachAndRead(t *testing.T, tgt *Machine, h *kd.Host) {
	t.Helper()
	ctx := ctxT(t)
	sc, err := h.Attach(ctx)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if sc.NewState != uint32(kd.StateException) || sc.ProgramCounter == 0 {
		t.Fatalf("state change after attach: %+v", sc)
	}
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if kb := tgt.Layout().KernBase; v.KernBase != kb || v.MinorVersion != tgt.Config().Build {
		t.Fatalf("version: KernBase %#x build %d; want %#x, %d", v.KernBase, v.MinorVersion, kb, tgt.Config().Build)
	}
	addr := DataBase + 0x1234
	got, err := h.ReadVirtual(ctx, addr, 64)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	for i, b := range got {
		if want := Pattern(addr + uint64(i)); b != want {
			t.Fatalf("read %#x: byte %d is %#x, want %#x", addr, i, b, want)
		}
	}
}

func TestListenUnixNewDebuggerReplacesOld(t *testing.T) {
	dir := testkit.ShortDir(t)
	path := filepath.Join(dir, "kd.sock")
	tgt := New(Config{Build: 22631, ServicePack: 1})
	var log logLines
	addr, stop := startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return Listen(ctx, tgt, NetworkUnix, path, o)
	}, PortOptions{Logger: log.logger()})
	if addr != "unix:"+path {
		t.Fatalf("Ready(%q); want %q", addr, "unix:"+path)
	}

	c1, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	h1 := fastHost(t, c1)
	attachAndRead(t, tgt, h1)
	ctx := ctxT(t)
	mark := []byte("left by the first debugger")
	if _, err := h1.WriteVirtual(ctx, DataBase+0x100, mark); err != nil {
		t.Fatalf("write: %v", err)
	}

	// A second debugger connects while the first is still attached.
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	h2 := fastHost(t, c2)
	attachAndRead(t, tgt, h2)
	got, err := h2.ReadVirtual(ctx, DataBase+0x100, len(mark))
	if err != nil || !bytes.Equal(got, mark) {
		t.Fatalf("second debugger reads %q, %v; want %q (state must survive)", got, err, mark)
	}
	// The first connection was closed by the target.
	select {
	case <-h1.Link().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the replaced debugger's connection is still open")
	}
	if n := tgt.Stats().Connections; n != 2 {
		t.Errorf("Connections = %d; want 2", n)
	}
	if log.count("replaces") != 1 {
		t.Errorf("no replacement logged: %q", log.lines)
	}
	testkit.WaitFor(t, "disconnect log with link stats", func() bool { return log.count("packets sent") >= 1 })

	stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after stop: %v; want it removed", err)
	}
}

func TestListenUnixStaleFiles(t *testing.T) {
	dir := testkit.ShortDir(t)
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		testkit.StaleSocket(t, path)
		tgt := New(Config{})
		startEndpoint(t, func(ctx context.Context, o PortOptions) error {
			return Listen(ctx, tgt, NetworkUnix, path, o)
		}, PortOptions{})
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		attachAndRead(t, tgt, fastHost(t, c))
	})
	others := map[string]func(path string) error{
		"regular file": func(p string) error { return os.WriteFile(p, []byte("keep me"), 0o600) },
		"directory":    func(p string) error { return os.Mkdir(p, 0o700) },
	}
	for name, mk := range others {
		t.Run(name+" is left alone", func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := mk(path); err != nil {
				t.Fatal(err)
			}
			err := Listen(ctxT(t), New(Config{}), NetworkUnix, path, PortOptions{})
			if err == nil || !strings.Contains(err.Error(), "not a socket") || !strings.Contains(err.Error(), path) {
				t.Fatalf("Listen over a %s: %v; want a 'not a socket' error naming the path", name, err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("the %s was touched: %v", name, err)
			}
		})
	}
}

func TestEndpointArgumentErrors(t *testing.T) {
	tgt := New(Config{})
	long := "/tmp/" + strings.Repeat("x", 200)
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"listen long path", func() error { return Listen(ctxT(t), tgt, NetworkUnix, long, PortOptions{}) }, "longer than"},
		{"listen pty", func() error { return Listen(ctxT(t), tgt, NetworkPTY, "", PortOptions{}) }, "ServePTY"},
		{"listen udp", func() error { return Listen(ctxT(t), tgt, "udp", "127.0.0.1:0", PortOptions{}) }, "unsupported network"},
		{"connect port 0", func() error { return Connect(ctxT(t), tgt, NetworkTCP, "127.0.0.1:0", PortOptions{}) }, "port 0"},
		{"connect no port", func() error { return Connect(ctxT(t), tgt, NetworkTCP, "127.0.0.1", PortOptions{}) }, "connect tcp:127.0.0.1"},
		{"connect long path", func() error { return Connect(ctxT(t), tgt, NetworkUnix, long, PortOptions{}) }, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one containing %q", err, c.want)
			}
		})
	}
}

func TestListenTCP(t *testing.T) {
	tgt := New(Config{PrintEvery: 20 * time.Millisecond})
	addr, _ := startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return Listen(ctx, tgt, NetworkTCP, "127.0.0.1:0", o)
	}, PortOptions{})
	network, hostport, err := ParsePort(addr)
	if err != nil || network != NetworkTCP || strings.HasSuffix(hostport, ":0") {
		t.Fatalf("Ready(%q): want tcp:127.0.0.1:PORT with the bound port", addr)
	}
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	var prints sync.Map
	h := newHost(t, c, kd.HostOptions{
		AttachInterval: 200 * time.Millisecond,
		OnPrint:        func(_ uint16, text []byte) { prints.Store(string(text), true) },
	})
	attachAndRead(t, tgt, h)
	ctx := ctxT(t)
	if err := h.Continue(ctx); err != nil {
		t.Fatalf("continue: %v", err)
	}
	testkit.WaitFor(t, "target running", func() bool { return !tgt.Halted() })
	testkit.WaitFor(t, "DbgPrint while running", func() bool { return tgt.Stats().Prints > 0 })
	if _, err := h.Break(ctx); err != nil {
		t.Fatalf("break: %v", err)
	}
	if !tgt.Halted() {
		t.Fatal("target not halted after break")
	}
	if _, ok := prints.Load("kdtarget: tick 1\n"); !ok {
		t.Error("the debugger never saw the first DbgPrint")
	}
}

func TestConnectRedials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tgt := New(Config{})
	var log logLines
	addr, _ := startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return Connect(ctx, tgt, NetworkTCP, ln.Addr().String(), o)
	}, PortOptions{Logger: log.logger(), RedialMin: 10 * time.Millisecond, RedialMax: 50 * time.Millisecond})
	if addr != "tcp:"+ln.Addr().String() {
		t.Fatalf("Ready(%q); want tcp:%s", addr, ln.Addr())
	}
	accept := func() net.Conn {
		t.Helper()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("kdtarget did not dial: %v", err)
		}
		return c
	}
	for round := range 3 {
		c := accept()
		h := fastHost(t, c)
		attachAndRead(t, tgt, h)
		// Kill the connection: the target must dial again.
		h.Link().Close()
		c.Close()
		testkit.WaitFor(t, fmt.Sprintf("disconnect %d logged", round+1), func() bool { return log.count("disconnected") >= round+1 })
	}
	if n := tgt.Stats().Connections; n != 3 {
		t.Errorf("Connections = %d; want 3", n)
	}
}

func TestConnectWaitsForListener(t *testing.T) {
	path := filepath.Join(testkit.ShortDir(t), "dbg.sock")
	tgt := New(Config{StartHalted: true})
	var log logLines
	startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return Connect(ctx, tgt, NetworkUnix, path, o)
	}, PortOptions{Logger: log.logger(), RedialMin: 5 * time.Millisecond, RedialMax: 20 * time.Millisecond})
	// Nothing listens yet: the target keeps trying.
	testkit.WaitFor(t, "failed dials", func() bool { return log.count("retrying") >= 3 })
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("kdtarget never dialled once the debugger listened: %v", err)
	}
	attachAndRead(t, tgt, fastHost(t, c))
}
