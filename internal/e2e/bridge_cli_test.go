//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"

	"golang.org/x/sys/unix"

	"kdsrv/internal/kd"
	"kdsrv/internal/serial"
	"kdsrv/internal/sim"
	"kdsrv/internal/transport"
)

// runBridgeMain runs kdclient's Main as a bridge and returns the ready line
// and a stop function that checks Main's exit code.
func runBridgeMain(t *testing.T, k, listen string) (ready string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- kdclientcli.Main(ctx, []string{"-k", k, "-listen", listen}, pw, &stderr)
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			cancel()
			t.Fatalf("kdclient exited before it was ready (code %d); stderr: %s", <-code, stderr.String())
		}
		ready = l
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("no ready line; stderr: %s", stderr.String())
	}
	return ready, func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("kdclient exited %d; stderr: %s", c, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("kdclient did not stop")
		}
		for range lines {
		}
	}
}

func attachVersion(t *testing.T, conn io.ReadWriteCloser) {
	t.Helper()
	h, closeLink := newHost(t, conn, kd.HostOptions{})
	defer closeLink()
	ctx := ctxFor(t, 20*time.Second)
	if _, err := h.Attach(ctx); err != nil {
		t.Fatalf("attach through the bridge: %v", err)
	}
	v, err := h.Version(ctx)
	if err != nil || v.KernBase != testKernBase {
		t.Fatalf("version through the bridge: %+v %v", v, err)
	}
}

func TestBridgeCLIUnixAndNpipe(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, _ := h.addTarget("vm1", sim.Config{KernBase: testKernBase})
	k := fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", h.serverSpec(""), trans)

	sock := filepath.Join(h.dir, "bridge.sock")
	ready, stop := runBridgeMain(t, k, "unix:"+sock)
	if !strings.Contains(ready, "bridge ready on unix:"+sock) || !strings.Contains(ready, "r2 -d winkd://"+sock) {
		t.Fatalf("ready line %q", ready)
	}
	for range 2 { // a debugger comes, goes, and another comes
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		attachVersion(t, c)
	}
	stop()

	t.Setenv(transport.PipeDirEnv, h.dir)
	ready, stop = runBridgeMain(t, k, "npipe:kdbridge")
	if !strings.Contains(ready, "bridge ready on npipe:kdbridge") {
		t.Fatalf("ready line %q", ready)
	}
	c, err := transport.DialPipe(ctxFor(t, 5*time.Second), ".", "kdbridge")
	if err != nil {
		t.Fatal(err)
	}
	attachVersion(t, c)
	stop()
}

func TestBridgeCLITCPAndPTY(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, _ := h.addTarget("vm1", sim.Config{KernBase: testKernBase})
	k := fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", h.serverSpec(""), trans)

	ready, stop := runBridgeMain(t, k, "tcp:127.0.0.1:0")
	m := regexp.MustCompile(`com:ipport=(\d+),port=127\.0\.0\.1`).FindStringSubmatch(ready)
	if m == nil {
		t.Fatalf("ready line %q", ready)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+m[1])
	if err != nil {
		t.Fatal(err)
	}
	attachVersion(t, c)
	stop()

	ready, stop = runBridgeMain(t, k, "pty")
	defer stop()
	m = regexp.MustCompile(`bridge ready on pty (\S+)`).FindStringSubmatch(ready)
	if m == nil {
		t.Fatalf("ready line %q", ready)
	}
	for range 2 { // the pty survives a debugger closing it
		f, err := os.OpenFile(m[1], os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		rawTerminal(t, int(f.Fd()))
		attachVersion(t, f)
	}
}

func rawTerminal(t *testing.T, fd int) {
	t.Helper()
	if err := serial.MakeRaw(fd); err != nil {
		t.Fatal(err)
	}
}
