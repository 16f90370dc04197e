package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// freeUDPPort returns a loopback UDP address that nothing listens on.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

func startTestResponder(t *testing.T, reg *Registry, addr string, opts ResponderOptions) *Responder {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "TESTHOST"
	}
	r, err := StartResponder(reg, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestQueryGolden(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	child := startSleeper(t)
	lines := []string{
		Line("tcp", []KV{{"port", PortField(53, 60)}}, false),
		Line("npipe", []KV{{"pipe", "KernelPipe"}}, true),
	}
	// Register the two transports as two servers, in pid order.
	pids := []int{os.Getpid(), child.Process.Pid}
	if pids[0] > pids[1] {
		pids[0], pids[1] = pids[1], pids[0]
	}
	for i, pid := range pids {
		if _, err := reg.Register(Server{PID: pid, Transports: lines[i : i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	r := startTestResponder(t, reg, "127.0.0.1:0", ResponderOptions{})
	res, err := Query(context.Background(), r.Addr().String(), QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Host != "TESTHOST" {
		t.Errorf("Host = %q, want TESTHOST", res.Host)
	}
	if d := cmp.Diff(lines, res.Lines); d != "" {
		t.Fatalf("Lines (-want +got):\n%s", d)
	}
	golden(t, "format.golden", []byte(Format("HOST", res.Lines)))
	js, err := FormatJSON("HOST", res.Lines)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "format.json.golden", js)
	want := "Servers on HOST:\n" +
		"Remote Kernel Debugger Server - tcp:Port=53:60\n" +
		"Remote Kernel Debugger Server - npipe:Pipe=KernelPipe,Password=*\n"
	if got := Format("HOST", res.Lines); got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
}

func TestQueryNoServers(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	r := startTestResponder(t, reg, "127.0.0.1:0", ResponderOptions{})
	res, err := Query(context.Background(), `\\`+r.Addr().String(), QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) != 0 || res.Truncated {
		t.Fatalf("got %+v, want no lines", res)
	}
	got := Format("HOST", res.Lines)
	golden(t, "format_empty.golden", []byte(got))
	if got != "No servers found on HOST.\n" {
		t.Fatalf("Format = %q", got)
	}
	js, _ := FormatJSON("HOST", nil)
	golden(t, "format_empty.json.golden", js)
}

func TestQuerySeesLaterServers(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	r := startTestResponder(t, reg, "127.0.0.1:0", ResponderOptions{Burst: 100})
	addr := r.Addr().String()
	if res, err := Query(context.Background(), addr, QueryOptions{}); err != nil || len(res.Lines) != 0 {
		t.Fatalf("before register: %+v, %v", res, err)
	}
	un, err := reg.Register(Server{Transports: []string{"ssl:Proto=tls1,Port=5001"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Query(context.Background(), addr, QueryOptions{})
	if err != nil || len(res.Lines) != 1 || res.Lines[0] != "ssl:Proto=tls1,Port=5001" {
		t.Fatalf("after register: %+v, %v", res, err)
	}
	_ = un()
	if res, err := Query(context.Background(), addr, QueryOptions{}); err != nil || len(res.Lines) != 0 {
		t.Fatalf("after unregister: %+v, %v", res, err)
	}
}

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	var lines []string
	for i := 0; i < MaxTransports; i++ {
		lines = append(lines, fmt.Sprintf("npipe:Pipe=%s%03d", strings.Repeat("p", 180), i))
	}
	if _, err := reg.Register(Server{Transports: lines}); err != nil {
		t.Fatal(err)
	}
	r := startTestResponder(t, reg, "127.0.0.1:0", ResponderOptions{Burst: 100})
	res, err := Query(context.Background(), r.Addr().String(), QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(lines, res.Lines); d != "" || res.Truncated {
		t.Fatalf("paged lines (-want +got):\n%s (truncated %v)", d, res.Truncated)
	}
}

func TestQueryNoResponder(t *testing.T) {
	t.Parallel()
	addr := freeUDPPort(t)
	_, err := Query(context.Background(), addr, QueryOptions{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrNoResponder) {
		t.Fatalf("err = %v, want ErrNoResponder", err)
	}
	t.Log(err)
	for _, want := range []string{addr, "no kdsrv discovery responder answered", "UDP port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestQueryContextCancel(t *testing.T) {
	t.Parallel()
	// A socket that receives but never answers.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Query(ctx, c.LocalAddr().String(), QueryOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("Query to a silent peer succeeded")
	}
}

func TestQueryRateLimit(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	const burst = 3
	r := startTestResponder(t, reg, "127.0.0.1:0", ResponderOptions{Burst: burst, Rate: 0.001})
	addr := r.Addr().String()
	opts := QueryOptions{Attempts: 1, Timeout: 3 * time.Second}
	for i := 0; i < burst; i++ {
		if _, err := Query(context.Background(), addr, opts); err != nil {
			t.Fatalf("query %d within the burst: %v", i+1, err)
		}
	}
	_, err := Query(context.Background(), addr, opts)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("query %d: err = %v, want ErrRateLimited", burst+1, err)
	}
	// The busy notice is itself limited: the next query gets no answer.
	_, err = Query(context.Background(), addr, QueryOptions{Attempts: 1, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrNoResponder) {
		t.Fatalf("query %d: err = %v, want ErrNoResponder (silently dropped)", burst+2, err)
	}
}

func TestResponderTakeover(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	if _, err := reg.Register(Server{Transports: []string{"tcp:Port=5000"}}); err != nil {
		t.Fatal(err)
	}
	addr := freeUDPPort(t)
	first := startTestResponder(t, reg, addr, ResponderOptions{Hostname: "first", RetryInterval: 20 * time.Millisecond})
	if !first.Active() {
		t.Skip("could not bind the chosen port (raced with another process)")
	}
	second := startTestResponder(t, reg, addr, ResponderOptions{Hostname: "second", RetryInterval: 20 * time.Millisecond})
	if second.Active() || second.Addr() != nil {
		t.Fatal("second responder bound a port that the first holds")
	}
	res, err := Query(context.Background(), addr, QueryOptions{})
	if err != nil || res.Host != "first" {
		t.Fatalf("before take-over: %+v, %v", res, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !second.Active() {
		if time.Now().After(deadline) {
			t.Fatal("second responder did not take over within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res, err = Query(context.Background(), addr, QueryOptions{})
	if err != nil || res.Host != "second" || len(res.Lines) != 1 || res.Lines[0] != "tcp:Port=5000" {
		t.Fatalf("after take-over: %+v, %v", res, err)
	}
}

func TestResponderBadAddr(t *testing.T) {
	t.Parallel()
	if _, err := StartResponder(&Registry{Dir: t.TempDir()}, "256.1.1.1:1", ResponderOptions{}); err == nil {
		t.Fatal("StartResponder on an invalid address succeeded")
	}
}

func TestResponderIgnoresGarbage(t *testing.T) {
	t.Parallel()
	r := startTestResponder(t, &Registry{Dir: t.TempDir()}, "127.0.0.1:0", ResponderOptions{})
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	short := encodeRequest(request{ID: 1})[:RequestSize-1]
	for _, pkt := range [][]byte{nil, []byte("KDQR"), short, encodeBusy(0, 1), encodeAnswer("h", 0, 1, nil, false)} {
		if reply := r.answer(pkt, src, time.Now()); reply != nil {
			t.Errorf("answered %q with %q", pkt, reply)
		}
	}
}

func TestResolveTarget(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "127.0.0.1:50100"},
		{".", "127.0.0.1:50100"},
		{"localhost", "127.0.0.1:50100"},
		{`\\LocalHost`, "127.0.0.1:50100"},
		{`\\build7`, "build7:50100"},
		{"build7:1234", "build7:1234"},
		{"::1", "[::1]:50100"},
		{"[::1]", "[::1]:50100"},
		{"[::1]:7", "[::1]:7"},
	}
	for _, tc := range tests {
		if got := resolveTarget(tc.in, DefaultPort); got != tc.want {
			t.Errorf("resolveTarget(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
