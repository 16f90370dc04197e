package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/cli/completion"
	"kdsrv/internal/cli/completion/completiontest"
	"kdsrv/internal/client"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestDryRunAndHelp(t *testing.T) {
	bin := testkit.Program(t, "kdsrv")
	out, _, code := testkit.Run(t, bin, "-dry-run", "-t", "tcp:port=51:60,password=abc123,IcfEnable")
	if code != 0 || strings.TrimSpace(out) != "tcp:port=51:60,password=*,IcfEnable" {
		t.Fatalf("dry-run: code %d, out %q", code, out)
	}
	_, errOut, code := testkit.Run(t, bin, "-dry-run", "-t", "tcp:port=70000")
	if code != 2 || !strings.Contains(errOut, `port="70000"`) {
		t.Fatalf("bad port: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = testkit.Run(t, bin, "-dry-run", "-t", "tcp:port=5005", "-t", "ssl:proto=ssl3,certuser=x,port=6000")
	if code != 2 || !strings.Contains(errOut, "proto") {
		t.Fatalf("ssl3: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = testkit.Run(t, bin, "-h")
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
	if _, _, code := testkit.Run(t, bin); code != 2 {
		t.Fatalf("no -t: exit %d, want 2", code)
	}
}

func TestServeAndSIGTERM(t *testing.T) {
	bin := testkit.Program(t, "kdsrv")
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

// TestLogsJSON: with -log-format json every line kdsrv writes on standard
// error is a JSON object with time, level and msg; at the default level a
// client's connection, a refused password and a session are logged; no
// output shows the password or the KDNET key.
func TestLogsJSON(t *testing.T) {
	bin := testkit.Program(t, "kdsrv")
	const password = "Pw7s3cret77"
	const key = "2steg4fzbj2sz.w8sa3ldw8i1c.2c3jhbvjqxqz7.1yyr7dsp1jkj"
	cmd := exec.Command(bin, "-log-format", "json", "-t", "tcp:port=33000:33999,password="+password, "-bind", "127.0.0.1",
		"-allow", "net:*", "-registry", t.TempDir(), "-qr-port", "0", "-no-mdns")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out lockedBuffer
	ready := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			select {
			case ready <- sc.Text():
			default:
			}
		}
	}()
	var port string
	select {
	case l := <-ready:
		m := regexp.MustCompile(`listening on tcp:port=(\d+)`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ready line %q", l)
		}
		port = m[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("no ready line; stderr: %s", stderr.String())
	}
	connect := func(pw string) (*client.Conn, *spec.Connect, error) {
		c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%s,password=%s},trans=@{net:port=%d,key=%s}", port, pw, testkit.FreeUDPPort(t), key))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		conn, err := client.Dial(ctx, c.Server, client.Options{Logger: logx.Discard()})
		return conn, c, err
	}
	if conn, _, err := connect("wrongpass1"); err == nil {
		conn.Close()
		t.Fatal("a wrong password was accepted")
	}
	conn, c, err := connect(password)
	if err != nil {
		t.Fatalf("right password: %v\nkdsrv stderr:\n%s", err, stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	if _, err := conn.Open(ctx, c.Trans); err != nil {
		t.Logf("open of the KDNET target (nobody answers on it): %v", err)
	}
	cancel()
	conn.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kdsrv: %v\n%s", err, stderr.String())
	}
	<-copied

	msgs := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not a JSON object: %q", line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("stderr line without %q: %s", k, line)
			}
		}
		msg, _ := rec["msg"].(string)
		msgs[msg] = append(msgs[msg], rec)
	}
	for _, want := range []string{"listening", "client connected", "client refused", "client authenticated", "session opened", "session released", "server shutting down"} {
		recs := msgs[want]
		if len(recs) == 0 {
			t.Errorf("no %q line at the default level; stderr:\n%s", want, stderr.String())
			continue
		}
		if recs[0]["level"] != "INFO" {
			t.Errorf("%q logged at %v, want INFO", want, recs[0]["level"])
		}
	}
	if r := msgs["client refused"]; len(r) > 0 {
		if reason, _ := r[0]["reason"].(string); !strings.Contains(reason, "access denied") || r[0]["from"] == nil || r[0]["transport"] == nil {
			t.Errorf("refusal without source, transport and reason: %v", r[0])
		}
	}
	for _, m := range []string{"session opened", "session released"} {
		for _, r := range msgs[m] {
			if r["session"] == nil || r["target_id"] == nil || r["target"] == nil {
				t.Errorf("%q line without session and target ids: %v", m, r)
			}
		}
	}
	all := stderr.String() + out.String()
	for _, secret := range []string{password, key, "w8sa3ldw8i1c"} {
		if strings.Contains(all, secret) {
			t.Errorf("the output shows the secret %q:\n%s", secret, all)
		}
	}
}

// TestVersion: -version and --version print the program, its version (as
// stamped with -ldflags -X), Go version and OS/arch, and exit 0, even
// without the -t kdsrv otherwise needs.
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kdsrv")
	out, err := exec.Command("go", "build", "-ldflags", "-X kdsrv/internal/version.Version=v0.9.1-test", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "kdsrv v0.9.1-test "
	for _, flag := range []string{"-version", "--version"} {
		stdout, stderr, code := testkit.Run(t, bin, flag)
		if code != 0 || !strings.HasPrefix(stdout, want) || !strings.Contains(stdout, runtime.Version()) ||
			!strings.HasSuffix(strings.TrimSpace(stdout), runtime.GOOS+"/"+runtime.GOARCH) || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q...", flag, code, stdout, stderr, want)
		}
	}
	stdout, _, code := testkit.Run(t, bin, "-version", "-log-format", "json")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v["program"] != "kdsrv" || v["version"] != "v0.9.1-test" {
		t.Errorf("-version -log-format json: exit %d, %q", code, stdout)
	}
}

// TestCompletionScripts: "kdsrv completion SHELL" prints a script its shell
// accepts (kdsrv completion bash | bash -n); zsh and fish are checked where
// installed (CI installs them).
func TestCompletionScripts(t *testing.T) {
	bin := testkit.Program(t, "kdsrv")
	for _, sh := range completion.Shells {
		t.Run(sh, func(t *testing.T) {
			stdout, stderr, code := testkit.Run(t, bin, "completion", sh)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			completiontest.CheckSyntax(t, sh, stdout)
		})
	}
	if _, stderr, code := testkit.Run(t, bin, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %q", code, stderr)
	}
}

// lockedBuffer is the shared concurrency-safe buffer of the tests.
type lockedBuffer = testkit.Buffer
