package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// exampleLines returns the command lines of kdsrv, kdclient and kdtarget
// in text: README's code blocks or a program's -h output.
func exampleLines(text string, fenced bool) []string {
	var out []string
	in := !fenced
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if fenced && strings.HasPrefix(t, "```") {
			in = !in
			continue
		}
		if !in || !fenced && !strings.HasPrefix(l, "  ") {
			continue // -h output: examples are indented, prose is not
		}
		for _, p := range []string{"kdsrv ", "kdclient ", "kdtarget "} {
			if strings.HasPrefix(t, p) {
				out = append(out, t)
			}
		}
	}
	return out
}

// placeholder marks lines that are syntax, not something to paste: the
// seed's forms ([...], {a|b}), <...>, '...', CAPITAL placeholders.
var placeholder = regexp.MustCompile(`\[|<|@\{\.\.\.\}|'\.\.\.|\.\.\.same|\| |\b(ADDR|LEN|HEX|FILE|PATH|HOST|PORT|EP|N|D|SPEC|TRANSPORT|NAME|ENDPOINT|COMMAND|ARGS|PATTERN|F|L)\b|\{certuser`)

// shellWords runs line's arguments through shell and returns the words it
// passes to the program.
func shellWords(t *testing.T, shell, line string) []string {
	t.Helper()
	_, args, _ := strings.Cut(line, " ")
	// Comments end a command in bash; zsh needs interactive_comments.
	script := "set -- " + args + "\nprintf '%s\\0' \"$@\""
	argv := []string{"-c", script}
	if strings.HasSuffix(shell, "zsh") {
		argv = []string{"-o", "interactivecomments", "-c", script}
	}
	out, err := exec.Command(shell, argv...).Output()
	if err != nil {
		t.Fatalf("%s cannot run %q: %v", shell, line, err)
	}
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1]
}

// TestExamplesPasteSafe: every example command line in README.md and in
// the -h output of kdsrv, kdclient and kdtarget gives the same words in
// bash and zsh (no brace or glob surprises), and every kdsrv and kdclient
// example that is not syntax parses (-dry-run exits 0).
func TestExamplesPasteSafe(t *testing.T) {
	kdtarget, kdsrv, kdclient := tools(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := exampleLines(string(readme), true)
	for _, bin := range []string{kdsrv, kdclient, kdtarget} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "-h")
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		_ = cmd.Run()
		lines = append(lines, exampleLines(stderr.String(), false)...)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	zsh, _ := exec.LookPath("zsh")
	ran := 0
	for _, line := range lines {
		if placeholder.MatchString(line) {
			continue
		}
		words := shellWords(t, bash, line)
		if zsh != "" {
			if zw := shellWords(t, zsh, line); !slices.Equal(words, zw) {
				t.Errorf("%q: bash passes %q, zsh %q", line, words, zw)
			}
		}
		for _, w := range words {
			if strings.ContainsAny(w, "{}") && !strings.Contains(w, "@{") {
				t.Errorf("%q: a word keeps stray braces: %q", line, w)
			}
		}
		prog, _, _ := strings.Cut(line, " ")
		var bin string
		switch prog {
		case "kdsrv":
			bin = kdsrv
		case "kdclient":
			bin = kdclient
		default:
			continue // kdtarget examples serve; the shell check is what they get
		}
		if slices.Contains(words, "-QR") || slices.Contains(words, "completion") || slices.Contains(words, "cert") {
			continue // they need a network, a shell or a store, not a parse
		}
		args := append([]string{"-dry-run"}, words...)
		if _, stderr, code := runProg(t, bin, args...); code != 0 {
			t.Errorf("%q does not parse: %s -dry-run exits %d: %s", line, prog, code, stderr)
		}
		ran++
	}
	if ran < 8 {
		t.Errorf("only %d examples were run; the extraction is broken", ran)
	}
	t.Logf("%d example lines checked, %d run with -dry-run", len(lines), ran)
}

func runProg(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}
