package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.CleanupPrograms()
	os.Exit(code)
}

// build compiles the command once per test binary.
func build(t *testing.T) string { return testkit.Program(t, "kdsrv") }

func run(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return testkit.Run(t, bin, args...)
}

func TestDryRunAndHelp(t *testing.T) {
	bin := build(t)
	out, _, code := run(t, bin, "-dry-run", "-t", "tcp:port=51:60,password=abc123,IcfEnable")
	if code != 0 || strings.TrimSpace(out) != "tcp:port=51:60,password=*,IcfEnable" {
		t.Fatalf("dry-run: code %d, out %q", code, out)
	}
	_, errOut, code := run(t, bin, "-dry-run", "-t", "tcp:port=70000")
	if code != 2 || !strings.Contains(errOut, `port="70000"`) {
		t.Fatalf("bad port: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, bin, "-dry-run", "-t", "tcp:port=5005", "-t", "ssl:proto=ssl3,certuser=x,port=6000")
	if code != 2 || !strings.Contains(errOut, "proto") {
		t.Fatalf("ssl3: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, bin, "-h")
	if code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, seed := range []string{
		"kdsrv -t npipe:pipe=PipeName[,hidden][,password=Password][,IcfEnable]",
		"kdsrv -t tcp:port=Socket,clicon=Client[,password=Password][,ipversion=6]",
		"kdsrv -t ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket,clicon=Client[,password=Password]",
		"-allow PATTERN", "-bind ADDR", "-allow-endpsrv", "-clicon-retry", "-dry-run",
	} {
		if !strings.Contains(errOut, seed) {
			t.Errorf("-h does not show %q", seed)
		}
	}
	if _, _, code := run(t, bin); code != 2 {
		t.Fatalf("no -t: exit %d, want 2", code)
	}
}

func TestServeAndSIGTERM(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "-t", "tcp:port=31000:31999", "-t", "tcp:port=32000:32999,password=abc", "-bind", "127.0.0.1",
		"-registry", t.TempDir(), "-qr-port", "0", "-no-mdns")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	re := regexp.MustCompile(`^kdsrv: listening on tcp:port=3[12]\d\d\d:3[12]999$`)
	for i := range 2 {
		select {
		case l := <-lines:
			if !re.MatchString(l) {
				t.Fatalf("ready line %d: %q", i, l)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no ready line; stderr: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("kdsrv did not exit after SIGTERM")
	}
	if strings.Contains(stderr.String(), "abc") {
		t.Fatal("the password appears on stderr")
	}
}
