package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"kdsrv/internal/cli/completion"
	"kdsrv/internal/cli/completion/completiontest"
	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestDryRunUsageAndErrors(t *testing.T) {
	bin := testkit.Program(t, "kdclient")
	k := "kdsrv:server=@{tcp:server=host,port=5005},trans=@{com:port=com1,baud=115200}"
	out, _, code := testkit.Run(t, bin, "-dry-run", "-k", k)
	if code != 0 || strings.TrimSpace(out) != "kdsrv:server=@{tcp:server=host,port=5005},trans=@{com:port=COM1,baud=115200}" {
		t.Fatalf("dry-run: %d %q", code, out)
	}
	_, errOut, code := testkit.Run(t, bin, "-dry-run", "-k", "kdsrv:server=@{tcp:server=host,port=70000},trans=@{com:port=com1,baud=115200}")
	if code != 2 || !strings.Contains(errOut, "port") {
		t.Fatalf("bad port: %d %q", code, errOut)
	}
	_, errOut, code = testkit.Run(t, bin, "-h")
	if code != 0 {
		t.Fatalf("-h: %d", code)
	}
	for _, want := range []string{"-listen", "-QR", "dump ADDR LEN FILE", "dbgprint", "endpsrv", "_NT_DEBUG_PORT", "com:ipport"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("-h does not mention %q", want)
		}
	}
	if _, errOut, code := testkit.Run(t, bin, "-k", k, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if _, errOut, code := testkit.Run(t, bin, "-k", k, "read", "zz", "16"); code != 2 || !strings.Contains(errOut, "hexadecimal") {
		t.Fatalf("bad address: %d %q", code, errOut)
	}
	// An unreachable server is a clear error, not a hang.
	_, errOut, code = testkit.Run(t, bin, "-timeout", "3s", "-k", "kdsrv:server=@{tcp:server=127.0.0.1,port=1},trans=@{com:port=com1,baud=115200}", "version")
	if code != 1 || !strings.Contains(errOut, "cannot reach kdsrv") {
		t.Fatalf("unreachable server: %d %q", code, errOut)
	}
}

// TestJSONErrors: with -json, kdclient's errors are JSON objects too (one
// per line, with time, level and msg), for bad usage and for failures.
func TestJSONErrors(t *testing.T) {
	bin := testkit.Program(t, "kdclient")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-json", "-timeout", "3s", "-k", "kdsrv:server=@{tcp:server=127.0.0.1,port=1},trans=@{com:port=com1,baud=115200}", "version"}, 1, "cannot reach kdsrv"},
		{[]string{"-json", "-k", "kdsrv:server=@{tcp:server=host,port=5005},trans=@{com:port=com1,baud=115200}", "frobnicate"}, 2, "unknown command"},
		{[]string{"-json", "-no-such-flag"}, 2, "no-such-flag"},
		{[]string{"-log-format", "json", "-k", "kdsrv:server=@{tcp:server=host,port=70000},trans=@{com:port=com1,baud=115200}", "version"}, 2, "port"},
	} {
		_, errOut, code := testkit.Run(t, bin, tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, errOut)
		}
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		found := false
		for _, l := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Errorf("%q: stderr line is not JSON: %q", tc.args, l)
				continue
			}
			if rec["time"] == nil || rec["level"] == nil {
				t.Errorf("%q: %q has no time or level", tc.args, l)
			}
			if msg, _ := rec["msg"].(string); rec["level"] == "ERROR" && strings.Contains(msg, tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no ERROR line about %q in %q", tc.args, tc.msg, errOut)
		}
	}
}

// TestVersion: -version and --version name the program and its version
// and exit 0; with -json the same as one JSON object.
func TestVersion(t *testing.T) {
	bin := testkit.Program(t, "kdclient")
	re := regexp.MustCompile(`^kdclient \S+ .*go1\.\d+\S* \w+/\w+\n$`)
	for _, flag := range []string{"-version", "--version"} {
		stdout, stderr, code := testkit.Run(t, bin, flag)
		if code != 0 || !re.MatchString(stdout) || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", flag, code, stdout, stderr)
		}
	}
	stdout, _, code := testkit.Run(t, bin, "-version", "-json")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v["program"] != "kdclient" || v["version"] == "" {
		t.Errorf("-version -json: exit %d, %q", code, stdout)
	}
}

// TestCompletionScripts: "kdclient completion SHELL" prints a script its shell
// accepts (kdclient completion bash | bash -n); zsh and fish are checked where
// installed (CI installs them).
func TestCompletionScripts(t *testing.T) {
	completiontest.CheckProgram(t, testkit.Program(t, "kdclient"), completion.Shells)
}

// TestJSONWarnings: with -json, kdclient's warnings (here: a password on
// the command line) are JSON lines too, and never show the password.
func TestJSONWarnings(t *testing.T) {
	bin := testkit.Program(t, "kdclient")
	_, errOut, code := testkit.Run(t, bin, "-json", "-dry-run", "-k", "kdsrv:server=@{tcp:server=host,port=5005,password=Sekr1t9},trans=@{com:port=com1,baud=115200}")
	if code != 0 || errOut == "" || strings.Contains(errOut, "Sekr1t9") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] != "WARN" || rec["msg"] == nil {
			t.Errorf("stderr line %q is not a JSON warning", l)
		}
	}
}
