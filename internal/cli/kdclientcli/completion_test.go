package kdclientcli

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"kdsrv/internal/cli/completion"
	"kdsrv/internal/cli/completion/completiontest"
)

// script gets the completion script for shell through kdclient's Main.
func script(t *testing.T, shell string) string {
	t.Helper()
	return completiontest.Script(t, shell, func(args []string, stdout, stderr io.Writer) int {
		return Main(context.Background(), append([]string{"completion"}, args...), stdout, stderr)
	})
}

// TestCompletionBash: the bash script completes flags, the -k and -listen
// forms and the commands, wherever they are among the flags.
func TestCompletionBash(t *testing.T) {
	s := script(t, "bash")
	completiontest.CheckBash(t, s, "_kdclient_complete", completiontest.Cases{
		// bash replaces the part after the last : or =, so that is what
		// the function offers.
		"kdclient -k kdsrv:server=@{tc": {"@{tcp:server=", "@{tcp:clicon="},
		"kdclient -listen ":             {"unix:", "tcp:", "npipe:", "pty"},
		"kdclient -k 'x' -json re":      {"regs", "read"},
		"kdclient -timeout 3s d":        {"dbgprint", "dump"},
		"kdclient -log-level e":         {"error"},
		"kdclient completion ":          {"bash", "zsh", "fish"},
	})
	got := completiontest.BashComplete(t, s, "_kdclient_complete", "kdclient ")
	for _, c := range commands {
		if !slices.Contains(got, c.name) {
			t.Errorf("command %s is not completed (got %q)", c.name, got)
		}
	}
}

func TestCompletionFish(t *testing.T) {
	completiontest.CheckFish(t, script(t, "fish"), completiontest.Cases{
		"kdclient -listen ": {"npipe:", "pty", "tcp:", "unix:"},
		"kdclient dum":      {"dump"},
	})
}

func TestCompletionSyntax(t *testing.T) {
	for _, sh := range completion.Shells {
		t.Run(sh, func(t *testing.T) { completiontest.CheckSyntax(t, sh, script(t, sh)) })
	}
}

// TestCommandsTable: every command of the table is one kdclient runs (an
// unknown one is refused with a list that comes from the table).
func TestCommandsTable(t *testing.T) {
	for _, c := range commands {
		if c.name == "endpsrv" || c.name == "console" {
			continue // handled before parseCommand: no debug session
		}
		_, err := parseCommand(cliOptions{}, []string{c.name})
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%s is in the table but parseCommand does not know it", c.name)
		}
	}
	_, err := parseCommand(cliOptions{}, []string{"frobnicate"})
	if err == nil || !strings.Contains(err.Error(), commandList()) {
		t.Errorf("unknown command: %v", err)
	}
}
