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
	return completiontest.Script(t, shell, completionMain)
}

// TestCompletionBash: the bash script completes flags, their values
// (transports, log levels), subcommands and their words.
func TestCompletionBash(t *testing.T) {
	s := script(t, "bash")
	completiontest.CheckBash(t, s, "_kdsrv_complete", completiontest.Cases{
		"kdsrv -t tc":        {"tcp:port="},
		"kdsrv -t ":          {"tcp:port=", "npipe:pipe=", "ssl:proto=", "spipe:proto=", "com:port="},
		"kdsrv -log-level w": {"warn"},
		"kdsrv -log-f":       {"-log-format"},
		"kdsrv -vers":        {"-version"},
		"kdsrv ":             {"cert", "completion"},
		"kdsrv completion ":  {"bash", "zsh", "fish"},
		"kdsrv cert ":        {"create", "list"},
		"kdsrv -t tcp:port=5005 -bind 127.0.0.1 c": {"cert", "completion"},
	})
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
	completiontest.CheckFish(t, script(t, "fish"), completiontest.Cases{
		"kdsrv -log-level ": {"debug", "error", "info", "warn"},
		"kdsrv completion ": {"bash", "fish", "zsh"},
		"kdsrv -t tc":       {"tcp:port="},
	})
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
