package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// DefaultCommandTimeout bounds each firewall command ExecRunner runs.
const DefaultCommandTimeout = 10 * time.Second

// Runner runs the firewall tools. Tests replace it to check the exact
// command lines without running them.
type Runner interface {
	// LookPath reports where the named program is installed, like
	// exec.LookPath.
	LookPath(name string) (string, error)
	// Run runs argv and returns its standard output. A command that ran
	// and failed returns a *CmdError.
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// CmdError is a firewall command that failed.
type CmdError struct {
	Cmd      string // the command line
	ExitCode int    // exit status, or -1 if it did not run to the end
	Stderr   string // what it printed on standard error, trimmed
	Err      error  // the underlying error
}

func (e *CmdError) Error() string {
	msg := fmt.Sprintf("%s failed", e.Cmd)
	if e.ExitCode >= 0 {
		msg += fmt.Sprintf(" with exit status %d", e.ExitCode)
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CmdError) Unwrap() error { return e.Err }

// ExecRunner runs commands with os/exec.
type ExecRunner struct {
	// Netns, if set, runs every command inside that network namespace
	// ("ip netns exec Netns ...").
	Netns string
	// Timeout bounds each command; 0 means DefaultCommandTimeout.
	Timeout time.Duration
}

// CommandPrefix is what ExecRunner puts before every command.
func (r ExecRunner) CommandPrefix() []string {
	if r.Netns == "" {
		return nil
	}
	return []string{"ip", "netns", "exec", r.Netns}
}

// LookPath finds the named program in PATH.
func (r ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Run runs argv (after the netns prefix) under the timeout.
func (r ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("firewall: empty command")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append(r.CommandPrefix(), argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.WaitDelay = time.Second
	prepareCmd(cmd, full)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &CmdError{Cmd: commandLine(full), ExitCode: -1, Stderr: trimOutput(stderr.String()), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = fmt.Errorf("no answer within %v: %w", timeout, ctx.Err())
	}
	return stdout.Bytes(), ce
}

// trimOutput keeps the first line-ish kilobyte of a tool's message.
func trimOutput(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 1024 {
		s = s[:1024] + "…"
	}
	return strings.Join(strings.Fields(s), " ")
}

// shellJoin quotes argv for a POSIX shell.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=,@+%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
