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
	"kdsrv/internal/testkit"

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

// binaries builds kdsrv and kdclient (testkit.Program: into a directory
// that every user may read, so that a server can also be started as
// nobody).
func binaries(t *testing.T) (kdsrv, kdclient string) {
	t.Helper()
	return testkit.Program(t, "kdsrv"), testkit.Program(t, "kdclient")
}

// proc is a kdsrv child process.
type proc struct {
	*testkit.Proc
	displays []string // the "listening on" forms, in -t order
}

var readyLine = regexp.MustCompile(`(?m)^kdsrv: (?:listening on|connecting to the client of) (\S+)$`)

// errNotReady is returned by startProc when kdsrv exited before listening.
var errNotReady = testkit.ErrExited

// startProc runs argv (kdsrv, possibly behind setpriv or ip netns exec)
// and waits for its n "listening on" lines. The process is stopped
// (SIGTERM, then SIGKILL) when the test ends.
func startProc(t *testing.T, env []string, n int, argv ...string) (*proc, error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	tp, err := testkit.TryStart(t, cmd)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { tp.Stop(t, syscall.SIGTERM) })
	m, err := tp.Match(tp.Stdout, readyLine, n)
	if err != nil {
		return nil, err
	}
	p := &proc{Proc: tp}
	for _, x := range m {
		p.displays = append(p.displays, x[1])
	}
	return p, nil
}

// runClient runs kdclient with args (and env, nil: this process's) and
// returns its output and exit code.
func runClient(t *testing.T, env []string, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	return testkit.RunCmd(t, cmd)
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
	qrPort := strconv.Itoa(testkit.FreeUDPPort(t))
	env := append(os.Environ(), "KDSRV_PIPE_DIR="+pipes)
	common := []string{"-registry", reg, "-qr-port", qrPort, "-no-mdns", "-bind", "127.0.0.1"}
	server := func(extra ...string) []string { return append(append([]string{kdsrvBin}, extra...), common...) }

	type listed struct {
		pid  int
		line string
	}
	var want []listed // what -QR must list, ordered by pid below
	list := func(p *proc, line string) { want = append(want, listed{p.Cmd.Process.Pid, line}) }
	wantOutput := func(drop ...*proc) string {
		var ls []listed
		for _, w := range want {
			if !slices.ContainsFunc(drop, func(p *proc) bool { return p.Cmd.Process.Pid == w.pid }) {
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
	ranged, err := startProc(t, env, 2, server("-t", fmt.Sprintf("tcp:port=%d:%d", lo, hi), "-t", fmt.Sprintf("tcp:port=%d,hidden", testkit.FreeTCPPort(t)))...)
	if err != nil {
		t.Fatal(err)
	}
	var used, end int
	if _, err := fmt.Sscanf(ranged.displays[0], "tcp:port=%d:%d", &used, &end); err != nil || used <= lo || end != hi {
		t.Fatalf("ranged server shows %q: want the port used (after the taken %d), then %d", ranged.displays[0], lo, hi)
	}
	list(ranged, fmt.Sprintf("tcp:Port=%d:%d", used, hi))

	pwPort := testkit.FreeTCPPort(t)
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
	if p, err := startProc(t, env, 1, server("-t", fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1", testkit.FreeTCPPort(t)), "-clicon-retry")...); unsupported(err) {
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
		if strings.Contains(clicon.Stderr.String(), "not discoverable") {
			t.Errorf("a clicon server should not print the not-elevated notice: %s", clicon.Stderr)
		}
	})
	// ... and a server run by an ordinary user, which says why at start-up.
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Log("non-elevated row skipped: setpriv (util-linux) is not installed")
	} else {
		argv := append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, server("-t", fmt.Sprintf("tcp:port=%d", testkit.FreeTCPPort(t)))...)
		p, err := startProc(t, env, 1, argv...)
		if err != nil {
			t.Fatal(err)
		}
		notice := `msg="not discoverable by -QR: kdsrv is not running as root (start it with sudo to make it discoverable)"`
		if !strings.Contains(p.Stderr.String(), notice) {
			t.Errorf("non-root kdsrv stderr = %q, want the notice %q", p.Stderr, notice)
		}
	}
	// A server that will be killed.
	victimPort := testkit.FreeTCPPort(t)
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
		victim.Kill()
		if _, err := os.Stat(filepath.Join(reg, strconv.Itoa(victim.Cmd.Process.Pid)+".json")); err != nil {
			t.Logf("registry entry of the killed server: %v", err)
		}
		out, errOut, code := qr(`\\127.0.0.1`, "-qr-port", qrPort)
		if code != 0 || out != wantOutput(victim) {
			t.Fatalf("after SIGKILL: exit %d\n got:\n%s\nwant:\n%s\nstderr: %s", code, out, wantOutput(victim), errOut)
		}
	})
	t.Run("another server takes the responder over", func(t *testing.T) {
		if code := ranged.Stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("kdsrv exited %d after SIGTERM", code)
		}
		if _, err := os.Stat(filepath.Join(reg, strconv.Itoa(ranged.Cmd.Process.Pid)+".json")); !errors.Is(err, os.ErrNotExist) {
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
		port := strconv.Itoa(testkit.FreeUDPPort(t))
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
	nsExec := testkit.MulticastNetns(t, "kde2edisc")
	kdsrvBin, kdclientBin := binaries(t)
	inNS := func(argv ...string) []string { return append(slices.Clone(nsExec), argv...) }
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
	wantLine := fmt.Sprintf("(pid %d) (", announced.Cmd.Process.Pid)
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
	if code := announced.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("kdsrv exited %d", code)
	}
	out, _, code = runClient(t, env, inNS(kdclientBin, "-QR", "-browse", "-timeout", "2s")...)
	if code != 0 || out != "No KD connection servers announced on the local network.\n" {
		t.Fatalf("after the announcing server stopped: exit %d, output %q", code, out)
	}
}
