// Package completiontest runs completion scripts in real shells for tests.
package completiontest

import (
	"bytes"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// BashComplete runs script in bash as if the user pressed Tab at the end
// of line, and returns what the completion function offers (for tests).
func BashComplete(t testing.TB, script, function, line string) []string {
	t.Helper()
	bash, f := shellAndScript(t, "bash", script)
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c",
		`source "$1" || exit 3; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; `+function+`; printf '%s\n' "${COMPREPLY[@]}"`,
		"bash", f, line).CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
	}
	return strings.Fields(string(out))
}

// FishComplete asks fish what it completes for line with script loaded
// (the candidates, without descriptions); the test is skipped when fish is
// not installed.
func FishComplete(t testing.TB, script, line string) []string {
	t.Helper()
	fish, f := shellAndScript(t, "fish", script)
	out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; and complete -C $argv[2]`, f, line).CombinedOutput()
	if err != nil {
		t.Fatalf("fish completion of %q: %v\n%s", line, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if w, _, _ := strings.Cut(l, "\t"); w != "" {
			got = append(got, w)
		}
	}
	return got
}

// CheckSyntax runs shell's syntax check (-n; fish --no-execute) on
// script; the test is skipped, saying why, when that shell is not
// installed.
func CheckSyntax(t testing.TB, shell, script string) {
	t.Helper()
	path, f := shellAndScript(t, shell, script)
	args := []string{"-n", f}
	if shell == "fish" {
		args = []string{"--no-execute", f}
	}
	if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s -n rejects the completion script: %v\n%s\n--- script ---\n%s", shell, err, out, script)
	}
	if shell == "zsh" {
		// It also loads: compdef registers the function.
		out, err := exec.Command(path, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "${_comps[$2]}"`, "zsh", f, firstWord(script)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			t.Fatalf("zsh does not load the completion script: %v\n%s", err, out)
		}
	}
}

// shellAndScript finds shell (the test is skipped, saying why, when it is
// not installed) and writes script to a file for it.
func shellAndScript(t testing.TB, shell, script string) (path, file string) {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it): %v", shell, err)
	}
	file = filepath.Join(t.TempDir(), "completion."+shell)
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, file
}

// Script runs a program's completion subcommand for shell (main gets the
// words after "completion") and returns the script it prints; the test
// fails if it exits non-zero.
func Script(t testing.TB, shell string, main func(args []string, stdout, stderr io.Writer) int) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := main([]string{shell}, &out, &errb); code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errb.String())
	}
	return out.String()
}

// Cases maps command lines, as typed before Tab, to the words completion
// must offer for them.
type Cases map[string][]string

// CheckBash checks cases with BashComplete (function is the script's
// completion function); the words must come in the order given.
func CheckBash(t testing.TB, script, function string, cases Cases) {
	t.Helper()
	for _, line := range slices.Sorted(maps.Keys(cases)) {
		if got := BashComplete(t, script, function, line); !slices.Equal(got, cases[line]) {
			t.Errorf("bash %q: got %q, want %q", line, got, cases[line])
		}
	}
}

// CheckFish checks cases with FishComplete, the words in any order.
func CheckFish(t testing.TB, script string, cases Cases) {
	t.Helper()
	for _, line := range slices.Sorted(maps.Keys(cases)) {
		got := FishComplete(t, script, line)
		slices.Sort(got)
		if want := slices.Sorted(slices.Values(cases[line])); !slices.Equal(got, want) {
			t.Errorf("fish %q: got %q, want %q", line, got, want)
		}
	}
}

// firstWord is the program of a zsh script's "#compdef PROG" line.
func firstWord(script string) string {
	line, _, _ := strings.Cut(script, "\n")
	return strings.TrimSpace(strings.TrimPrefix(line, "#compdef"))
}
