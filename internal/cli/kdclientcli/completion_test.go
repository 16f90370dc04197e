package kdclientcli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"kdsrv/internal/cli/completion"
	"kdsrv/internal/cli/completion/completiontest"
)

func script(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"completion", shell}, &out, &errb); code != 0 {
		t.Fatalf("kdclient completion %s: exit %d: %s", shell, code, errb.String())
	}
	return out.String()
}

// TestCompletionBash: the bash script completes flags, the -k and -listen
// forms and the commands, wherever they are among the flags.
func TestCompletionBash(t *testing.T) {
	s := script(t, "bash")
	for _, tc := range []struct {
		line string
		want []string
	}{
		// bash replaces the part after the last : or =, so that is what
		// the function offers.
		{"kdclient -k kdsrv:server=@{tc", []string{"@{tcp:server=", "@{tcp:clicon="}},
		{"kdclient -listen ", []string{"unix:", "tcp:", "npipe:", "pty"}},
		{"kdclient -k 'x' -json re", []string{"regs", "read"}},
		{"kdclient -timeout 3s d", []string{"dbgprint", "dump"}},
		{"kdclient -log-level e", []string{"error"}},
		{"kdclient completion ", []string{"bash", "zsh", "fish"}},
	} {
		got := completiontest.BashComplete(t, s, "_kdclient_complete", tc.line)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	got := completiontest.BashComplete(t, s, "_kdclient_complete", "kdclient ")
	for _, c := range commands {
		if !slices.Contains(got, c.name) {
			t.Errorf("command %s is not completed (got %q)", c.name, got)
		}
	}
}

func TestCompletionFish(t *testing.T) {
	s := script(t, "fish")
	got := completiontest.FishComplete(t, s, "kdclient -listen ")
	slices.Sort(got)
	if want := []string{"npipe:", "pty", "tcp:", "unix:"}; !slices.Equal(got, want) {
		t.Errorf("-listen: got %q, want %q", got, want)
	}
	if got := completiontest.FishComplete(t, s, "kdclient dum"); !slices.Equal(got, []string{"dump"}) {
		t.Errorf("dum: got %q", got)
	}
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
