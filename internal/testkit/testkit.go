// Package testkit holds what the project's tests share: golden files that
// -update rewrites, waiting for a condition, pseudo-terminal pairs, and
// building the programs for the tests that run them as processes. It is
// imported only by tests.
//
// Timer-driven code is tested inside testing/synctest bubbles: there the
// clock is fake, so WaitFor's polling and any timeout take no real time,
// and synctest.Wait replaces sleeps that "prove" nothing happens.
package testkit

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files and seed corpora under testdata/ instead of comparing with them")

// Updating reports whether the test binary runs with -update: golden files
// and seed corpora are rewritten rather than compared.
func Updating() bool { return *update }

// Golden compares got with the file at path (relative to the package's
// directory, usually under testdata/), or writes got there under -update.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s unreadable (regenerate it with go test -update): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (if the change is intended, regenerate with go test -update):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// WaitLimit bounds WaitFor.
const WaitLimit = 10 * time.Second

// WaitFor polls cond until it holds and fails the test if it does not
// within WaitLimit. Inside a synctest bubble the polling takes no real
// time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, WaitLimit, what, cond)
}

// WaitWithin is WaitFor with another limit, for conditions that take a
// loaded machine longer (a program restarting, a link reconnecting).
func WaitWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// Program builds the program cmd/NAME of this module once per test binary
// and returns the path of the executable. The test is skipped where the go
// command is not available.
func Program(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build %s: %v", name, err)
	}
	if builtDir == "" {
		d, err := os.MkdirTemp("", "kdsrv-testkit-")
		if err != nil {
			t.Fatal(err)
		}
		// Readable by every user: a test may run a program as another
		// user (setpriv).
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		builtDir = d
	}
	exe := filepath.Join(builtDir, name)
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	out, err := exec.Command(goBin, "build", "-o", exe, "kdsrv/cmd/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("go build kdsrv/cmd/%s: %v\n%s", name, err, out)
	}
	built[name] = exe
	return exe
}

// CleanupPrograms removes what Program built; call it from TestMain after
// m.Run.
func CleanupPrograms() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtDir != "" {
		os.RemoveAll(builtDir)
		builtDir = ""
		built = map[string]string{}
	}
}

// Run runs the program bin with args and returns what it wrote and its
// exit code (RunCmd).
func Run(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunCmd(t, exec.Command(bin, args...))
}

// Main runs a test binary's tests and then removes what Program built;
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	CleanupPrograms()
	os.Exit(code)
}
