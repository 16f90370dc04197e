package kdsrvcli

import (
	"context"
	"kdsrv/internal/testkit"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const filePW = "FromTheFile9"

func pwFile(t *testing.T, mode os.FileMode) string {
	return testkit.WriteFile(t, "pw", filePW+"\n", mode)
}

func dryRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e strings.Builder
	code = run(context.Background(), append([]string{"-dry-run"}, args...), &o, &e, defaultEnv())
	return code, o.String(), e.String()
}

// TestPasswordFile: -password-file protects every -t that gives no
// password=, never shows the password, and a password on the command line
// draws one warning that says how to avoid it.
func TestPasswordFile(t *testing.T) {
	t.Parallel()
	f := pwFile(t, 0o600)
	code, out, errOut := dryRun(t, "-password-file", f, "-t", "tcp:port=5005", "-t", "npipe:pipe=kd,password=OnCmdLine1", "-t", "tcp:port=5006,password=OnCmdLine2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("dry-run printed %q", out)
	}
	for i, l := range lines {
		if !strings.Contains(strings.ToLower(l), "password=") {
			t.Errorf("transport %d has no password: %q", i, l)
		}
	}
	if n := strings.Count(errOut, "visible to every local user"); n != 1 || !strings.Contains(errOut, "-password-file FILE") {
		t.Errorf("want one warning naming -password-file, got:\n%s", errOut)
	}
	for _, secret := range []string{filePW, "OnCmdLine1", "OnCmdLine2"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("output shows a password:\n%s%s", out, errOut)
		}
	}

	// No password anywhere: no warning.
	if code, _, errOut := dryRun(t, "-t", "tcp:port=5005"); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("plain -t: exit %d, %q", code, errOut)
	}
	// A file no transport uses is a mistake.
	if code, _, errOut := dryRun(t, "-password-file", f, "-t", "tcp:port=5005,password=x"); code != 2 || !strings.Contains(errOut, "used by no transport") {
		t.Errorf("unused file: exit %d, %q", code, errOut)
	}
}

func TestPasswordFileRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits")
	}
	t.Parallel()
	f := pwFile(t, 0o640)
	code, _, errOut := dryRun(t, "-password-file", f, "-t", "tcp:port=5005")
	if code != 2 || !strings.Contains(errOut, "mode 0640") || !strings.Contains(errOut, "chmod 600 "+f) {
		t.Fatalf("group-readable file: exit %d, %q; want 2 naming the mode and chmod 600", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if code, _, errOut := dryRun(t, "-password-file", missing, "-t", "tcp:port=5005"); code != 2 || !strings.Contains(errOut, missing) {
		t.Fatalf("missing file: exit %d, %q", code, errOut)
	}
	bad := testkit.WriteFile(t, "bad", "has a space\n", 0o600)
	if code, _, errOut := dryRun(t, "-password-file", bad, "-t", "tcp:port=5005"); code != 2 || !strings.Contains(errOut, "alphanumeric") || strings.Contains(errOut, "has a space") {
		t.Fatalf("bad password in file: exit %d, %q", code, errOut)
	}
	var o, e strings.Builder
	if code := run(context.Background(), []string{"-h"}, &o, &e, defaultEnv()); code != 0 || !strings.Contains(e.String(), "second kdsrv") || !strings.Contains(e.String(), "-password-file FILE") {
		t.Errorf("-h does not explain -password-file and the second kdsrv for open transports")
	}
}
