package main

import (
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
	p := testkit.Start(t, exec.Command(bin, "-t", "tcp:port=31000:31999", "-t", "tcp:port=32000:32999,password=abc", "-bind", "127.0.0.1",
		"-registry", t.TempDir(), "-qr-port", "0", "-no-mdns"))
	lines, err := p.Match(p.Stdout, regexp.MustCompile(`(.*)\n`), 2)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^kdsrv: listening on tcp:port=3[12]\d\d\d:3[12]999$`)
	for i, l := range lines[:2] {
		if !re.MatchString(l[1]) {
			t.Fatalf("ready line %d: %q", i, l[1])
		}
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr: %s", code, p.Stderr)
	}
	if strings.Contains(p.Stderr.String(), "abc") {
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
	p := testkit.Start(t, exec.Command(bin, "-log-format", "json", "-t", "tcp:port=33000:33999,password="+password, "-bind", "127.0.0.1",
		"-allow", "net:*", "-registry", t.TempDir(), "-qr-port", "0", "-no-mdns"))
	port := p.Expect(t, regexp.MustCompile(`listening on tcp:port=(\d+)`))[1]
	// A session opens (dial, authenticate, open the KDNET target, which
	// nobody answers on) and closes (detach, disconnect).
	open := func(pw string) (*client.Session, error) {
		c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%s,password=%s},trans=@{net:port=%d,key=%s}", port, pw, testkit.FreeUDPPort(t), key))
		if err != nil {
			t.Fatal(err)
		}
		return client.OpenSession(testkit.Context(t, 15*time.Second), c, client.Options{Logger: logx.Discard()}, client.SessionOptions{})
	}
	if s, err := open("wrongpass1"); err == nil {
		s.Close()
		t.Fatal("a wrong password was accepted")
	}
	s, err := open(password)
	if err != nil {
		t.Fatalf("right password: %v\nkdsrv stderr:\n%s", err, p.Stderr)
	}
	s.Close()
	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("kdsrv: exit %d\n%s", code, p.Stderr)
	}
	stderr, out := p.Stderr, p.Stdout

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
	completiontest.CheckProgram(t, testkit.Program(t, "kdsrv"), completion.Shells)
}
