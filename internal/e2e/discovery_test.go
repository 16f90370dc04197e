package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	"kdsrv/internal/logx"

	"kdsrv/internal/client"
	"kdsrv/internal/discovery"
	"kdsrv/internal/spec"
)

// Discovery end to end: real kdsrv processes (several per host, one killed
// with SIGKILL, one run as an ordinary user) answered for by one responder,
// and the real kdclient -QR printing them. Every test uses its own registry
// directory and UDP port, so it neither sees nor disturbs a kdsrv that runs
// on the machine, and passes -no-mdns except inside a private network
// namespace.

// binaries builds kdsrv and kdclient into a directory that every user may
// read, so that a server can also be started as nobody.
func binaries(t *testing.T) (kdsrv, kdclient string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build kdsrv and kdclient")
	}
	dir, err := os.MkdirTemp("", "kde2ebin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(os.PathSeparator), "kdsrv/cmd/kdsrv", "kdsrv/cmd/kdclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	return filepath.Join(dir, "kdsrv"+exe), filepath.Join(dir, "kdclient"+exe)
}

// proc is a kdsrv child process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has been waited for
	err            error         // from Wait, valid after done
	displays       []string      // the "listening on" forms, in -t order
}

var readyLine = regexp.MustCompile(`(?m)^kdsrv: (?:listening on|connecting to the client of) (\S+)$`)

// errNotReady is returned by startProc when kdsrv exited before listening.
var errNotReady = errors.New("kdsrv exited before it was ready")

// startProc runs argv (kdsrv, possibly behind setpriv or ip netns exec)
// and waits up to 15 s for its n "listening on" lines. The process is
// stopped (SIGTERM, then SIGKILL) when the test ends.
func startProc(t *testing.T, env []string, n int, argv ...string) (*proc, error) {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { // owned by the cleanup below, which waits for it
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s stderr:\n%s", strings.Join(argv, " "), p.stderr)
		}
	})
	for i := 0; i < 300; i++ {
		if m := readyLine.FindAllStringSubmatch(p.stdout.String(), -1); len(m) >= n {
			for _, x := range m {
				p.displays = append(p.displays, x[1])
			}
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%w: %v: %s", errNotReady, p.err, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%s: not listening after 15s: %s", strings.Join(argv, " "), p.stderr)
}

// stop ends the process with SIGTERM (SIGKILL after 15 s) and returns its
// exit code.
func (p *proc) stop(t *testing.T) int {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("kdsrv pid %d ignored SIGTERM for 15s; killing it", p.cmd.Process.Pid)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the process with SIGKILL, leaving its registry entry behind.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// runClient runs kdclient with args and returns its output and exit code.
func runClient(t *testing.T, env []string, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var o, e syncBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("kdclient: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("kdclient %q did not finish within 30s", argv[1:])
	}
	return o.String(), e.String(), code
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// unsupported reports whether kdsrv refused a transport this build does
// not have yet.
func unsupported(err error) bool {
	return err != nil && errors.Is(err, errNotReady) && strings.Contains(err.Error(), "not supported by this build")
}

const discoveryPassword = "Sekr1tPw7"

func TestDiscoveryQR(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("process-level discovery test is written for Linux and macOS")
	}
	if os.Geteuid() != 0 {
		t.Skip("only servers running as root are discoverable: run this test as root (CI does)")
	}
	kdsrvBin, kdclientBin := binaries(t)
	reg := t.TempDir()
	pipes := shortDir(t)
	qrPort := strconv.Itoa(freeUDPPort(t))
	env := append(os.Environ(), "KDSRV_PIPE_DIR="+pipes)
	common := []string{"-registry", reg, "-qr-port", qrPort, "-no-mdns", "-bind", "127.0.0.1"}
	server := func(extra ...string) []string { return append(append([]string{kdsrvBin}, extra...), common...) }

	type listed struct {
		pid  int
		line string
	}
	var want []listed // what -QR must list, ordered by pid below
	list := func(p *proc, line string) { want = append(want, listed{p.cmd.Process.Pid, line}) }
	wantOutput := func(drop ...*proc) string {
		var ls []listed
		for _, w := range want {
			if !slices.ContainsFunc(drop, func(p *proc) bool { return p.cmd.Process.Pid == w.pid }) {
				ls = append(ls, w)
			}
		}
		slices.SortStableFunc(ls, func(a, b listed) int { return a.pid - b.pid })
		var b strings.Builder
		b.WriteString("Servers on 127.0.0.1:\n")
		for _, l := range ls {
			b.WriteString("Remote Kernel Debugger Server - " + l.line + "\n")
		}
		return b.String()
	}

	// A tcp range whose first port is taken, and a hidden transport of the
	// same process. It starts first, so it holds the responder's port.
	blocker, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	lo := blocker.Addr().(*net.TCPAddr).Port
	hi := lo + 20
	ranged, err := startProc(t, env, 2, server("-t", fmt.Sprintf("tcp:port=%d:%d", lo, hi), "-t", fmt.Sprintf("tcp:port=%d,hidden", freeTCPPort(t)))...)
	if err != nil {
		t.Fatal(err)
	}
	var used, end int
	if _, err := fmt.Sscanf(ranged.displays[0], "tcp:port=%d:%d", &used, &end); err != nil || used <= lo || end != hi {
		t.Fatalf("ranged server shows %q: want the port used (after the taken %d), then %d", ranged.displays[0], lo, hi)
	}
	list(ranged, fmt.Sprintf("tcp:Port=%d:%d", used, hi))

	pwPort := freeTCPPort(t)
	pw, err := startProc(t, env, 1, server("-t", fmt.Sprintf("tcp:port=%d,password=%s", pwPort, discoveryPassword))...)
	if err != nil {
		t.Fatal(err)
	}
	list(pw, fmt.Sprintf("tcp:Port=%d,Password=*", pwPort))

	// An npipe server with a password, when this build has npipe.
	npipeMissing := ""
	if p, err := startProc(t, env, 1, server("-t", "npipe:pipe=KernelPipe,password="+discoveryPassword)...); unsupported(err) {
		npipeMissing = "the npipe transport is not in this build yet (internal/transport npipe*.go): npipe row skipped"
	} else if err != nil {
		t.Fatal(err)
	} else {
		list(p, "npipe:Pipe=KernelPipe,Password=*")
	}
	// Never listed: a reverse (clicon) server ...
	var clicon *proc
	cliconMissing := ""
	if p, err := startProc(t, env, 1, server("-t", fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1", freeTCPPort(t)), "-clicon-retry")...); unsupported(err) {
		cliconMissing = "reverse connections (clicon) are not in this build yet (internal/transport clicon.go): clicon row skipped"
	} else if err != nil {
		t.Fatal(err)
	} else {
		clicon = p
	}
	// Rows for transports that have not landed yet are reported as skipped.
	t.Run("npipe", func(t *testing.T) {
		if npipeMissing != "" {
			t.Skip(npipeMissing)
		}
	})
	t.Run("clicon", func(t *testing.T) {
		if cliconMissing != "" {
			t.Skip(cliconMissing)
		}
		if strings.Contains(clicon.stderr.String(), "not discoverable") {
			t.Errorf("a clicon server should not print the not-elevated notice: %s", clicon.stderr)
		}
	})
	// ... and a server run by an ordinary user, which says why at start-up.
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Log("non-elevated row skipped: setpriv (util-linux) is not installed")
	} else {
		argv := append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, server("-t", fmt.Sprintf("tcp:port=%d", freeTCPPort(t)))...)
		p, err := startProc(t, env, 1, argv...)
		if err != nil {
			t.Fatal(err)
		}
		notice := `msg="not discoverable by -QR: kdsrv is not running as root (start it with sudo to make it discoverable)"`
		if !strings.Contains(p.stderr.String(), notice) {
			t.Errorf("non-root kdsrv stderr = %q, want the notice %q", p.stderr, notice)
		}
	}
	// A server that will be killed.
	victimPort := freeTCPPort(t)
	victim, err := startProc(t, env, 1, server("-t", fmt.Sprintf("tcp:port=%d", victimPort))...)
	if err != nil {
		t.Fatal(err)
	}
	list(victim, fmt.Sprintf("tcp:Port=%d", victimPort))

	qr := func(args ...string) (string, string, int) {
		return runClient(t, env, append([]string{kdclientBin, "-QR"}, args...)...)
	}
	t.Run("golden", func(t *testing.T) {
		out, errOut, code := qr(`\\127.0.0.1`, "-qr-port", qrPort)
		if code != 0 || out != wantOutput() {
			t.Fatalf("kdclient -QR: exit %d\n got:\n%s\nwant:\n%s\nstderr: %s", code, out, wantOutput(), errOut)
		}
		t.Logf("kdclient -QR \\\\127.0.0.1:\n%s", out)
		if strings.Contains(out, discoveryPassword) {
			t.Fatal("the password is shown")
		}
		// Every line is a transport a client can use as it stands.
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n")[1:] {
			line := strings.TrimPrefix(l, discovery.ServerKind+" - ")
			proto, rest, _ := strings.Cut(line, ":")
			form := proto + ":server=127.0.0.1," + strings.ReplaceAll(rest, "Password=*", "Password="+discoveryPassword)
			tr, err := spec.ParseClientTransport(form)
			if err != nil {
				t.Errorf("%q is not a client transport: %v", form, err)
				continue
			}
			if proto == string(spec.NPipe) {
				t.Setenv("KDSRV_PIPE_DIR", pipes)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := client.Dial(ctx, tr, client.Options{Logger: logx.Discard()})
			cancel()
			if err != nil {
				t.Errorf("connect with %q: %v", form, err)
				continue
			}
			c.Close()
		}
	})
	t.Run("json", func(t *testing.T) {
		out, errOut, code := qr("127.0.0.1", "-qr-port", qrPort, "-json")
		var doc discovery.JSONResult
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !strings.HasSuffix(out, "}\n") || strings.HasSuffix(out, "\n\n") {
			t.Fatalf("kdclient -QR -json: exit %d, output %q, stderr %s", code, out, errOut)
		}
		if doc.Host != "127.0.0.1" || len(doc.Servers) != len(want) {
			t.Fatalf("-json: %+v, want host 127.0.0.1 and %d servers", doc, len(want))
		}
		for _, s := range doc.Servers {
			if s.Password != strings.HasSuffix(s.Transport, ",Password=*") {
				t.Errorf("-json: %+v: password flag wrong", s)
			}
		}
	})
	t.Run("killed server is not listed", func(t *testing.T) {
		victim.kill()
		if _, err := os.Stat(filepath.Join(reg, strconv.Itoa(victim.cmd.Process.Pid)+".json")); err != nil {
			t.Logf("registry entry of the killed server: %v", err)
		}
		out, errOut, code := qr(`\\127.0.0.1`, "-qr-port", qrPort)
		if code != 0 || out != wantOutput(victim) {
			t.Fatalf("after SIGKILL: exit %d\n got:\n%s\nwant:\n%s\nstderr: %s", code, out, wantOutput(victim), errOut)
		}
	})
	t.Run("another server takes the responder over", func(t *testing.T) {
		if code := ranged.stop(t); code != 0 {
			t.Fatalf("kdsrv exited %d after SIGTERM", code)
		}
		if _, err := os.Stat(filepath.Join(reg, strconv.Itoa(ranged.cmd.Process.Pid)+".json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("registry entry left after a clean exit: %v", err)
		}
		// Standby responders retry every 2 s.
		var out, errOut string
		code := -1
		for i := 0; i < 10 && code != 0; i++ {
			out, errOut, code = qr(`\\127.0.0.1`, "-qr-port", qrPort, "-timeout", "1s")
			t.Logf("attempt %d: exit %d %s", i, code, errOut)
		}
		if code != 0 || out != wantOutput(victim, ranged) {
			t.Fatalf("after the responder's server exited: exit %d\n got:\n%s\nwant:\n%s\nstderr: %s", code, out, wantOutput(victim, ranged), errOut)
		}
	})
	t.Run("no responder", func(t *testing.T) {
		port := strconv.Itoa(freeUDPPort(t))
		out, errOut, code := qr(`\\127.0.0.1`, "-qr-port", port, "-timeout", "1s")
		if code != 1 || out != "" {
			t.Fatalf("exit %d, stdout %q; want 1 and no output", code, out)
		}
		for _, s := range []string{"no kdsrv discovery responder answered", "127.0.0.1:" + port, "UDP port " + port} {
			if !strings.Contains(errOut, s) {
				t.Errorf("stderr %q does not say %q", errOut, s)
			}
		}
	})
}

func TestQRUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-QR", "a", "b"}, "at most one host"},
		{[]string{"-QR", "-qr-port", "0"}, "not a UDP port"},
		{[]string{"-QR", "-browse", "host1"}, "takes no host"},
		{[]string{"-QR", `\\`}, "names no host"},
	} {
		var out, errOut syncBuffer
		code := kdclientcli.Main(context.Background(), tc.args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("kdclient %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}

// TestDiscoveryBrowseNetns runs an announcing kdsrv and kdclient -QR
// -browse inside a private network namespace whose only interface is a
// multicast-enabled loopback, so no multicast reaches a real network.
func TestDiscoveryBrowseNetns(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to create a network namespace")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip(8) not installed")
	}
	ns := "kde2edisc" + strconv.Itoa(os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip := func(args ...string) error {
		out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
		if err != nil {
			t.Logf("ip %v: %v: %s", args, err, out)
		}
		return err
	}
	if ip("netns", "add", ns) != nil {
		t.Skip("cannot create a network namespace here")
	}
	t.Cleanup(func() { _ = exec.Command(ipPath, "netns", "del", ns).Run() })
	if ip("-n", ns, "link", "set", "lo", "up", "multicast", "on") != nil ||
		ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo") != nil {
		t.Fatal("cannot set up the namespace's loopback for multicast")
	}
	kdsrvBin, kdclientBin := binaries(t)
	inNS := func(argv ...string) []string { return append([]string{ipPath, "netns", "exec", ns}, argv...) }
	env := os.Environ()
	common := []string{"-registry", t.TempDir(), "-qr-port", "0"}
	announced, err := startProc(t, env, 1, inNS(append([]string{kdsrvBin, "-t", "tcp:port=5005,password=" + discoveryPassword}, common...)...)...)
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := startProc(t, env, 1, inNS(append([]string{kdsrvBin, "-t", "tcp:port=5006", "-no-mdns"}, common...)...)...)
	if err != nil {
		t.Fatal(err)
	}
	_ = quiet
	out, errOut, code := runClient(t, env, inNS(kdclientBin, "-QR", "-browse", "-timeout", "2s")...)
	wantLine := fmt.Sprintf("(pid %d) (", announced.cmd.Process.Pid)
	if code != 0 || !strings.Contains(out, wantLine) || !strings.Contains(out, ".local.:5005) - tcp:Port=5005,Password=*\n") {
		t.Fatalf("kdclient -QR -browse: exit %d, output %q (stderr %q); want a line with %q and tcp:Port=5005,Password=*", code, out, errOut, wantLine)
	}
	if strings.Contains(out, "5006") || strings.Contains(out, discoveryPassword) {
		t.Fatalf("-browse lists the -no-mdns server or shows the password: %q", out)
	}
	out, _, code = runClient(t, env, inNS(kdclientBin, "-QR", "-browse", "-json", "-timeout", "2s")...)
	var res []discovery.BrowseResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].Port != 5005 {
		t.Fatalf("-browse -json: exit %d, %q", code, out)
	}
	// The goodbye on exit withdraws the server.
	if code := announced.stop(t); code != 0 {
		t.Fatalf("kdsrv exited %d", code)
	}
	out, _, code = runClient(t, env, inNS(kdclientBin, "-QR", "-browse", "-timeout", "2s")...)
	if code != 0 || out != "No KD connection servers announced on the local network.\n" {
		t.Fatalf("after the announcing server stopped: exit %d, output %q", code, out)
	}
}
