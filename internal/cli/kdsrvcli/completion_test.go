package kdsrvcli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"kdsrv/internal/cli/completion"
	"kdsrv/internal/cli/completion/completiontest"
)

func script(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := completionMain([]string{shell}, &out, &errb); code != 0 {
		t.Fatalf("kdsrv completion %s: exit %d: %s", shell, code, errb.String())
	}
	return out.String()
}

// TestCompletionBash: the bash script completes flags, their values
// (transports, log levels), subcommands and their words.
func TestCompletionBash(t *testing.T) {
	s := script(t, "bash")
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"kdsrv -t tc", []string{"tcp:port="}},
		{"kdsrv -t ", []string{"tcp:port=", "npipe:pipe=", "ssl:proto=", "spipe:proto=", "com:port="}},
		{"kdsrv -log-level w", []string{"warn"}},
		{"kdsrv -log-f", []string{"-log-format"}},
		{"kdsrv -vers", []string{"-version"}},
		{"kdsrv ", []string{"cert", "completion"}},
		{"kdsrv completion ", []string{"bash", "zsh", "fish"}},
		{"kdsrv cert ", []string{"create", "list"}},
		{"kdsrv -t tcp:port=5005 -bind 127.0.0.1 c", []string{"cert", "completion"}},
	} {
		got := completiontest.BashComplete(t, s, "_kdsrv_complete", tc.line)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	// Every flag of kdsrv is offered.
	got := completiontest.BashComplete(t, s, "_kdsrv_complete", "kdsrv -")
	for _, f := range completionSpec().Flags {
		if !slices.Contains(got, "-"+f.Name) {
			t.Errorf("-%s is not completed", f.Name)
		}
	}
}

// TestCompletionFish asks fish itself what it completes.
func TestCompletionFish(t *testing.T) {
	s := script(t, "fish")
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"kdsrv -log-level ", []string{"debug", "error", "info", "warn"}},
		{"kdsrv completion ", []string{"bash", "fish", "zsh"}},
		{"kdsrv -t tc", []string{"tcp:port="}},
	} {
		got := completiontest.FishComplete(t, s, tc.line)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestCompletionSyntax: every script passes its shell's syntax check
// (and zsh loads it).
func TestCompletionSyntax(t *testing.T) {
	for _, sh := range completion.Shells {
		t.Run(sh, func(t *testing.T) { completiontest.CheckSyntax(t, sh, script(t, sh)) })
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"tcsh"}, {"bash", "zsh"}} {
		var out, errb bytes.Buffer
		if code := completionMain(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "bash, zsh or fish") {
			t.Errorf("%q: exit %d, %q", args, code, errb.String())
		}
	}
}
