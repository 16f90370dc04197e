package main

import (
	"runtime"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestVersion: kdbench -version and --version name the program and its
// version and exit 0.
func TestVersion(t *testing.T) {
	bin := testkit.Program(t, "kdbench")
	for _, flag := range []string{"-version", "--version"} {
		stdout, stderr, code := testkit.Run(t, bin, flag)
		if code != 0 || !strings.HasPrefix(stdout, "kdbench ") || !strings.Contains(stdout, runtime.GOOS+"/"+runtime.GOARCH) || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", flag, code, stdout, stderr)
		}
	}
}
