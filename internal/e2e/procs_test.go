package e2e

import (
	"fmt"
	"kdsrv/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Process-level tests of the three programs together: kdtarget on a unix
// socket, kdsrv opening it, kdclient talking to kdsrv — each a real process
// that the tests signal and kill.

// tools builds kdtarget, kdsrv and kdclient (once per test binary).
func tools(t *testing.T) (kdtarget, kdsrv, kdclient string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("these tests signal processes and use unix sockets")
	}
	return testkit.Program(t, "kdtarget"), testkit.Program(t, "kdsrv"), testkit.Program(t, "kdclient")
}

// bgProc is a program running in the background for one test.
type bgProc = testkit.Proc

// startBg starts argv with env added to the environment, and waits for a
// line of its standard output to match ready (nil: no wait). It is
// killed, if still running, when the test ends.
func startBg(t *testing.T, env []string, ready *regexp.Regexp, argv ...string) *bgProc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := testkit.Start(t, cmd)
	if ready != nil {
		p.Expect(t, ready)
	}
	return p
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
	port := testkit.FreeTCPPort(t)
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
		case <-p.Done():
			t.Fatalf("kdclient exited (%v) before writing %d bytes to %s: %s", p.Err(), n, glob, p.Stderr)
		case <-deadline:
			t.Fatalf("no %s of %d bytes after 30s: %s", glob, n, p.Stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func dirNames(t *testing.T, dir string) string { return strings.Join(testkit.DirNames(t, dir), " ") }
