package completiontest

import (
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

// CheckProgram runs "bin completion SHELL" for each of shells (the
// program's completion.Shells): each prints a script its shell accepts
// (CheckSyntax) and nothing on standard error; an unknown shell is a usage
// error (exit 2) that names the shells.
func CheckProgram(t *testing.T, bin string, shells []string) {
	t.Helper()
	for _, sh := range shells {
		t.Run(sh, func(t *testing.T) {
			stdout, stderr, code := testkit.Run(t, bin, "completion", sh)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			CheckSyntax(t, sh, stdout)
		})
	}
	if _, stderr, code := testkit.Run(t, bin, "completion", "tcsh"); code != 2 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %q", code, stderr)
	}
}
