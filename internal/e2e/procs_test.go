package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process-level tests of the three programs together: kdtarget on a unix
// socket, kdsrv opening it, kdclient talking to kdsrv — each a real process
// that the tests signal and kill.

// tools builds kdtarget, kdsrv and kdclient into a temporary directory.
func tools(t *testing.T) (kdtarget, kdsrv, kdclient string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("these tests signal processes and use unix sockets")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the programs")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(os.PathSeparator), "kdsrv/cmd/kdtarget", "kdsrv/cmd/kdsrv", "kdsrv/cmd/kdclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "kdtarget"), filepath.Join(dir, "kdsrv"), filepath.Join(dir, "kdclient")
}

// bgProc is a program running in the background for one test.
type bgProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// startBg starts argv with env added to the environment, and waits up to
// 15 s for a line of its standard output to match ready (nil: no wait). It
// is killed, if still running, when the test ends.
func startBg(t *testing.T, env []string, ready *regexp.Regexp, argv ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(argv[0], argv[1:]...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process does; the cleanup kills it
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(argv[0]), p.stderr)
		}
	})
	if ready == nil {
		return p
	}
	deadline := time.After(15 * time.Second)
	for !ready.MatchString(p.stdout.String()) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", argv[0], p.err, p.stderr)
		case <-deadline:
			t.Fatalf("%s not ready after 15s: %s", argv[0], p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

func (p *bgProc) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

// wait waits up to 30 s for the process to exit and returns its exit code.
func (p *bgProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s", p.cmd.Path)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatal(p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

var (
	targetReady = regexp.MustCompile(`(?m)^kdtarget: listening on `)
	serverReady = regexp.MustCompile(`(?m)^kdsrv: listening on tcp:port=(\d+)`)
)

// stack is kdtarget + kdsrv on loopback; k is the -k for kdclient.
type stack struct {
	target, server *bgProc
	k              string
	kdclient       string
	dir            string
}

// startStack runs kdtarget (with extra flags) on a unix socket and kdsrv
// (with extra -t options, e.g. ",password=...", and extra flags/env) in
// front of it.
func startStack(t *testing.T, targetFlags []string, serverEnv []string, serverArgs ...string) *stack {
	t.Helper()
	kdtarget, kdsrv, kdclient := tools(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "kd.sock")
	st := &stack{kdclient: kdclient, dir: dir}
	st.target = startBg(t, nil, targetReady, append([]string{kdtarget, "-listen", "unix:" + sock}, targetFlags...)...)
	port := freeTCPPort(t)
	args := []string{kdsrv, "-bind", "127.0.0.1", "-allow", filepath.Join(dir, "*.sock")}
	args = append(args, serverArgs...)
	args = append(args, "-t", fmt.Sprintf("tcp:port=%d", port))
	st.server = startBg(t, serverEnv, serverReady, args...)
	st.k = fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{com:pipe,port=%s}", port, sock)
	return st
}

// client starts kdclient with args (and env) in the background.
func (st *stack) client(t *testing.T, env []string, args ...string) *bgProc {
	t.Helper()
	return startBg(t, env, nil, append([]string{st.kdclient}, args...)...)
}

// waitForFile waits up to 30 s until a file matching glob in dir holds at
// least n bytes, and returns its name.
func waitForFile(t *testing.T, p *bgProc, glob string, n int64) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ms, _ := filepath.Glob(glob)
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Size() >= n {
				return m
			}
		}
		select {
		case <-p.done:
			t.Fatalf("kdclient exited (%v) before writing %d bytes to %s: %s", p.err, n, glob, p.stderr)
		case <-deadline:
			t.Fatalf("no %s of %d bytes after 30s: %s", glob, n, p.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}
