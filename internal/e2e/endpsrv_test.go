package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	"kdsrv/internal/cli/kdsrvcli"
	"kdsrv/internal/testkit"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
	"kdsrv/internal/wire"
)

// endpsrv: a client asks the server to stop (kdclient ... endpsrv). kdsrv
// refuses unless started with -allow-endpsrv; when allowed it closes every
// session cleanly and exits 0.

// mainRun is server.Main running in the background, as the kdsrv command
// runs it.
type mainRun struct {
	port   int // the tcp port it listens on
	cancel context.CancelFunc
	code   chan int // receives Main's exit code
	done   bool     // Main has returned (test goroutine only)
	exit   int
	stderr *syncBuffer
}

// wait waits up to d for Main to return and gives its exit code; with
// d <= 0 it only looks.
func (m *mainRun) wait(d time.Duration) (int, bool) {
	if m.done {
		return m.exit, true
	}
	if d <= 0 {
		select {
		case m.exit = <-m.code:
			m.done = true
		default:
		}
		return m.exit, m.done
	}
	select {
	case m.exit = <-m.code:
		m.done = true
	case <-time.After(d):
	}
	return m.exit, m.done
}

// exited reports whether Main has returned, without waiting.
func (m *mainRun) exited() bool {
	_, ok := m.wait(0)
	return ok
}

// mainServer runs server.Main with a private registry and neither -QR
// responder nor mDNS, and waits until it listens.
func mainServer(t *testing.T, h *harness, extra ...string) *mainRun {
	t.Helper()
	args := append([]string{"-t", "tcp:port=20000:29999", "-bind", "127.0.0.1", "-allow", h.dir + "/*.sock",
		"-registry", t.TempDir(), "-qr-port", "0", "-no-mdns"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	m := &mainRun{cancel: cancel, code: make(chan int, 1), stderr: &syncBuffer{}}
	go func() { m.code <- kdsrvcli.Main(ctx, args, &stdout, m.stderr) }()
	t.Cleanup(func() {
		cancel()
		if _, ok := m.wait(20 * time.Second); !ok {
			t.Errorf("kdsrv Main did not return within 20s of its context ending")
		}
		if t.Failed() {
			t.Logf("kdsrv stderr:\n%s", m.stderr)
		}
	})
	re := regexp.MustCompile(`listening on tcp:port=(\d+)`)
	var sm []string
	testkit.WaitFor(t, "kdsrv to listen", func() bool {
		if m.exited() {
			t.Fatalf("kdsrv exited with %d: %s", m.exit, m.stderr)
		}
		sm = re.FindStringSubmatch(stdout.String())
		return sm != nil
	})
	m.port, _ = strconv.Atoi(sm[1])
	return m
}

// endpsrv runs "kdclient -k ... endpsrv" in process.
func endpsrv(t *testing.T, port int, trans string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k := fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{%s}", port, trans)
	code = kdclientcli.Main(ctx, []string{"-k", k, "endpsrv"}, &o, &e)
	return o.String(), e.String(), code
}

func newMainHarness(t *testing.T) *harness {
	return &harness{t: t, dir: shortDir(t), sims: map[string]*sim.Machine{}, logs: &syncBuffer{}}
}

func TestEndpsrvRefusedByDefault(t *testing.T) {
	h := newMainHarness(t)
	m := mainServer(t, h)
	port := m.port
	trans, _ := h.addTarget("vm1", sim.Config{})
	spec := fmt.Sprintf("tcp:server=127.0.0.1,port=%d", port)
	s, err := h.open(spec, trans, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, c := endpsrv(t, port, trans)
	if c != 1 || out != "" || !strings.Contains(errOut, "endpsrv refused") || !strings.Contains(errOut, "-allow-endpsrv") {
		t.Fatalf("endpsrv: exit %d, stdout %q, stderr %q; want 1 and a message naming -allow-endpsrv", c, out, errOut)
	}
	// The server and the open session go on.
	if m.exited() {
		t.Fatalf("kdsrv exited with %d after a refused endpsrv", m.exit)
	}
	ctx := ctxFor(t, 20*time.Second)
	kh := s.host(t, kd.HostOptions{})
	if _, err := kh.Attach(ctx); err != nil {
		t.Fatalf("attach after a refused endpsrv: %v", err)
	}
	if _, err := kh.Version(ctx); err != nil {
		t.Fatalf("session after a refused endpsrv: %v", err)
	}
	m.cancel()
	if n, ok := m.wait(20 * time.Second); !ok || n != 0 {
		t.Fatalf("kdsrv after its context ended: exited %v with %d, want 0", ok, n)
	}
}

func TestEndpsrvAllowed(t *testing.T) {
	h := newMainHarness(t)
	m := mainServer(t, h, "-allow-endpsrv")
	port := m.port
	trans, _ := h.addTarget("vm1", sim.Config{})
	s, err := h.open(fmt.Sprintf("tcp:server=127.0.0.1,port=%d", port), trans, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, c := endpsrv(t, port, trans)
	if c != 0 || out != "kdsrv is shutting down\n" {
		t.Fatalf("endpsrv: exit %d, stdout %q, stderr %q; want 0 and the server's answer", c, out, errOut)
	}
	if n, ok := m.wait(20 * time.Second); !ok || n != 0 {
		t.Fatalf("kdsrv after endpsrv: exited %v with %d, want to exit 0 by itself", ok, n)
	}
	// The open session was closed cleanly: the bridge's Run returns nil
	// only after the server's Bye (a vanished server is an error), and the
	// Bye says why.
	select {
	case <-s.Done():
		err := s.Err()
		if err != nil {
			t.Fatalf("the session ended with %v, want a clean close", err)
		}
		if r := s.Conn.Wire().ByeReason(); r != wire.ServerShutdown {
			t.Fatalf("the server said goodbye with %v, want %v", r, wire.ServerShutdown)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the session was not closed within 20s of the server's exit")
	}
	// Nothing listens any more.
	if _, err := h.open(fmt.Sprintf("tcp:server=127.0.0.1,port=%d", port), trans, client.Options{HandshakeTimeout: 2 * time.Second}); err == nil {
		t.Fatal("a client could still connect after endpsrv")
	}
}

// TestEndpsrvProcess checks the same at the process level: the real
// kdclient asks the real kdsrv to stop, and kdsrv's exit status is 0.
func TestEndpsrvProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("process-level test is written for Linux and macOS (it stops kdsrv with SIGTERM)")
	}
	kdsrvBin, kdclientBin := binaries(t)
	common := []string{"-bind", "127.0.0.1", "-registry", t.TempDir(), "-qr-port", "0", "-no-mdns"}
	trans := "com:pipe,port=" + filepath.Join(shortDir(t), "vm.sock") // never opened
	for _, allowed := range []bool{false, true} {
		t.Run("allow-endpsrv="+strconv.FormatBool(allowed), func(t *testing.T) {
			port := testkit.FreeTCPPort(t)
			argv := append([]string{kdsrvBin, "-t", fmt.Sprintf("tcp:port=%d", port)}, common...)
			if allowed {
				argv = append(argv, "-allow-endpsrv")
			}
			p, err := startProc(t, os.Environ(), 1, argv...)
			if err != nil {
				t.Fatal(err)
			}
			k := fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{%s}", port, trans)
			out, errOut, code := runClient(t, os.Environ(), kdclientBin, "-k", k, "endpsrv")
			if !allowed {
				if code != 1 || !strings.Contains(errOut, "-allow-endpsrv") {
					t.Fatalf("kdclient endpsrv: exit %d, stderr %q; want 1 and how to allow it", code, errOut)
				}
				select {
				case <-p.Done():
					t.Fatalf("kdsrv exited after a refused endpsrv: %v", p.Err())
				default:
				}
				return // the cleanup stops it
			}
			if code != 0 || out != "kdsrv is shutting down\n" {
				t.Fatalf("kdclient endpsrv: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			select {
			case <-p.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("kdsrv still runs 20s after endpsrv")
			}
			if c := p.Cmd.ProcessState.ExitCode(); c != 0 {
				t.Fatalf("kdsrv exit status %d after endpsrv, want 0", c)
			}
		})
	}
}
