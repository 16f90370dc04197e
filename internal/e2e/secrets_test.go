package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"kdsrv/internal/sim"
	"kdsrv/internal/testkit"
)

const e2ePassword = "Pw4e2eTests"

func ownerOnlyFile(t *testing.T, content string, mode os.FileMode) string {
	return testkit.WriteFile(t, "pw", content, mode)
}

// argvHolding returns the processes whose command line holds s.
func argvHolding(t *testing.T, s string) []string {
	t.Helper()
	ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, m+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestPasswordOffTheCommandLine: kdsrv takes its password from
// -password-file, kdclient from KDSRV_PASSWORD or -password-file; sessions
// work, and while a long command runs no process's argv holds the password.
func TestPasswordOffTheCommandLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	pwFile := ownerOnlyFile(t, e2ePassword+"\n", 0o600)
	st := startStack(t, []string{"-data-size", strconv.Itoa(dumpLen)}, nil, "-password-file", pwFile)

	c := st.client(t, []string{"KDSRV_PASSWORD=" + e2ePassword}, "-k", st.k, "version")
	if code := c.Wait(t); code != 0 {
		t.Fatalf("version with KDSRV_PASSWORD: exit %d\n%s", code, c.Stderr)
	}
	c = st.client(t, nil, "-password-file", pwFile, "-k", st.k, "version")
	if code := c.Wait(t); code != 0 {
		t.Fatalf("version with -password-file: exit %d\n%s", code, c.Stderr)
	}
	if strings.Contains(c.Stderr.String(), "warning") {
		t.Errorf("warning without a password on the command line:\n%s", c.Stderr)
	}

	// A long dump: while it runs, look at every process's argv.
	out := filepath.Join(t.TempDir(), "mem.bin")
	c = st.client(t, []string{"KDSRV_PASSWORD=" + e2ePassword}, "-k", st.k, "dump", fmt.Sprintf("%#x", sim.DataBase), strconv.Itoa(dumpLen), out)
	waitForFile(t, c, filepath.Join(filepath.Dir(out), ".mem.bin.*.tmp"), 64<<10)
	if found := argvHolding(t, e2ePassword); len(found) > 0 {
		t.Errorf("the password is in argv:\n%s", strings.Join(found, "\n"))
	}
	c.Signal(syscall.SIGINT)
	if code := c.Wait(t); code != 130 {
		t.Errorf("interrupted dump: exit %d\n%s", code, c.Stderr)
	}

	// The wrong password names where it came from; none at all, with no
	// terminal to ask on, says how to give one.
	c = st.client(t, []string{"KDSRV_PASSWORD=Wrong1"}, "-k", st.k, "version")
	if code := c.Wait(t); code != 1 || !strings.Contains(c.Stderr.String(), "the password came from KDSRV_PASSWORD") {
		t.Errorf("wrong password: exit %d\n%s", code, c.Stderr)
	}
	c = st.client(t, nil, "-k", st.k, "version")
	if code := c.Wait(t); code != 1 || !strings.Contains(c.Stderr.String(), "-password-file FILE") || !strings.Contains(c.Stderr.String(), "KDSRV_PASSWORD") {
		t.Errorf("no password, no terminal: exit %d\n%s", code, c.Stderr)
	}
	// On the command line it works, with one warning.
	c = st.client(t, nil, "-k", strings.Replace(st.k, "},trans=", ",password="+e2ePassword+"},trans=", 1), "version")
	if code := c.Wait(t); code != 0 || strings.Count(c.Stderr.String(), "visible to every local user") != 1 {
		t.Errorf("password in -k: exit %d\n%s", code, c.Stderr)
	}
}

// TestPasswordPrompt: with no password given and a terminal on standard
// input, kdclient asks without echo when the server wants one.
func TestPasswordPrompt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminal test")
	}
	pwFile := ownerOnlyFile(t, e2ePassword+"\n", 0o600)
	st := startStack(t, nil, nil, "-password-file", pwFile)
	cmd := exec.Command(st.kdclient, "-k", st.k, "version")
	cmd.Env = os.Environ()
	ptm, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	var seen syncBuffer
	readDone := make(chan struct{})
	go func() { // ends when the pty closes (the process exits and ptm is closed)
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			seen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	p := testkit.Started(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kdclient's terminal:\n%s", seen.String())
		}
	})
	testkit.WaitFor(t, "the password prompt", func() bool { return strings.Contains(seen.String(), "Password for kdsrv at") })
	if _, err := ptm.Write([]byte(e2ePassword + "\r")); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("kdclient after the prompt: exit %d\n%s", code, seen.String())
	}
	ptm.Close()
	<-readDone
	if strings.Contains(seen.String(), e2ePassword) {
		t.Fatalf("the password was echoed:\n%s", seen.String())
	}
}

// TestPasswordFileModeRefused: kdsrv refuses a password file that group
// or others can read, naming the mode and the fix.
func TestPasswordFileModeRefused(t *testing.T) {
	_, kdsrv, _ := tools(t)
	pwFile := ownerOnlyFile(t, e2ePassword+"\n", 0o644)
	_, out, code := testkit.Run(t, kdsrv, "-password-file", pwFile, "-t", "tcp:port=5005")
	if code != 2 || !strings.Contains(out, "mode 0644") || !strings.Contains(out, "chmod 600 "+pwFile) {
		t.Fatalf("kdsrv with a 0644 password file: exit %d\n%s", code, out)
	}
}
