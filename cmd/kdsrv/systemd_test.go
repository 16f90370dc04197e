package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

// TestSystemdUnit: packaging/systemd/kdsrv.service passes systemd-analyze
// verify with nothing to say (pointed at a real kdsrv binary), keeps the
// password out of argv, and the flags of its environment file are flags
// kdsrv accepts.
func TestSystemdUnit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd units are Linux-only")
	}
	unit, err := os.ReadFile("../../packaging/systemd/kdsrv.service")
	if err != nil {
		t.Fatal(err)
	}
	envFile, err := os.ReadFile("../../packaging/systemd/kdsrv.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		text string
	}{{"kdsrv.service", string(unit)}, {"kdsrv.env", string(envFile)}} {
		for _, line := range strings.Split(f.text, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(line, "password=") {
				t.Errorf("%s puts a password on the command line: %s", f.name, line)
			}
		}
	}
	if !strings.Contains(string(unit), "-password-file %d/password") || !strings.Contains(string(unit), "LoadCredential=password:") {
		t.Error("the unit does not hand kdsrv its password as a credential file")
	}
	bin := testkit.Program(t, "kdsrv")

	// The environment file's flags (and each commented example) parse.
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("Secret123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(string(envFile), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#")), " ")
		rest, ok := strings.CutPrefix(line, "KDSRV_ARGS=")
		if !ok {
			continue
		}
		args := append([]string{"-dry-run", "-password-file", pw}, strings.Fields(rest)...)
		if _, stderr, code := testkit.Run(t, bin, args...); code != 0 {
			t.Errorf("kdsrv rejects the flags %q of kdsrv.env: exit %d: %s", rest, code, stderr)
		}
		checked++
	}
	if checked < 2 {
		t.Errorf("only %d KDSRV_ARGS lines found in kdsrv.env", checked)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd): the unit file is not verified")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "kdsrv.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/kdsrv", bin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check has teeth: a misspelt setting is reported.
	bad := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(bad, []byte(strings.Replace(text, "NoNewPrivileges=yes", "NoNewPrivilege=yes", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", bad).CombinedOutput(); !strings.Contains(string(out), "NoNewPrivilege") {
		t.Errorf("systemd-analyze verify does not report a misspelt key: %s", out)
	}
}
