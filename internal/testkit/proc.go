package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Limits of the process helpers. They bound waits for a program that hangs
// or never gets ready; a test that passes never comes near them.
const (
	// RunLimit bounds Run and RunCmd.
	RunLimit = 2 * time.Minute
	// ReadyLimit bounds Proc.Match: how long a program may take to print
	// what says it is ready.
	ReadyLimit = 20 * time.Second
	// ExitLimit bounds Proc.Wait and Proc.Stop: how long a program may
	// take to exit when asked to.
	ExitLimit = 30 * time.Second
)

// ErrExited is returned by Proc.Match when the program exited before it
// wrote what was awaited.
var ErrExited = errors.New("the program exited before it was ready")

// RunCmd runs cmd (its Stdout and Stderr are set here) and returns what it
// wrote and its exit code. The test fails if the program cannot be started
// or runs longer than RunLimit (it is killed then).
func RunCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	p := start(cmd)
	if p.startErr != nil {
		t.Fatalf("run %s: %v", filepath.Base(cmd.Path), p.startErr)
	}
	select {
	case <-p.done:
	case <-time.After(RunLimit):
		_ = cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s %q did not finish within %v; stderr:\n%s", filepath.Base(cmd.Path), cmd.Args[1:], RunLimit, p.Stderr)
	}
	return p.Stdout.String(), p.Stderr.String(), p.exitCode(t)
}

// Proc is a program running in the background for one test; what it
// writes is collected in Stdout and Stderr.
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *Buffer

	startErr error
	done     chan struct{} // closed when the program has been waited for
	err      error         // from Wait, valid after done
}

func start(cmd *exec.Cmd) *Proc {
	p := &Proc{Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if p.startErr = cmd.Start(); p.startErr != nil {
		close(p.done)
		return p
	}
	p.watch()
	return p
}

func (p *Proc) watch() {
	cmd := p.Cmd
	go func() { // ends when the program does; its owner waits on done
		p.err = cmd.Wait()
		close(p.done)
	}()
}

// Start starts cmd in the background (its Stdout and Stderr are set here).
// When the test ends, the program is killed if it still runs, and its
// standard error is logged if the test failed. The test fails if the
// program cannot be started.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := TryStart(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TryStart is Start returning the error of a program that cannot be
// started (such as a missing helper program) instead of failing the test.
func TryStart(t testing.TB, cmd *exec.Cmd) (*Proc, error) {
	p := start(cmd)
	if p.startErr != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), p.startErr)
	}
	p.cleanup(t)
	return p, nil
}

// Started is Start for a program started elsewhere (on a terminal by
// pty.Start, say): it is waited for, and killed if still running when the
// test ends. What it writes does not go to Stdout and Stderr.
func Started(t testing.TB, cmd *exec.Cmd) *Proc {
	p := &Proc{Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	p.watch()
	p.cleanup(t)
	return p
}

func (p *Proc) cleanup(t testing.TB) {
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() && p.Stderr.String() != "" {
			t.Logf("%s stderr:\n%s", strings.Join(p.Cmd.Args, " "), p.Stderr)
		}
	})
}

// Done is closed when the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is what waiting for the program returned, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Match waits up to ReadyLimit until re matches at least n times in w (the
// program's Stdout or Stderr) and returns the matches with their groups.
// It fails with ErrExited (and the program's standard error) if the program
// exits first.
func (p *Proc) Match(w *Buffer, re *regexp.Regexp, n int) ([][]string, error) {
	deadline := time.After(ReadyLimit)
	for {
		if m := re.FindAllStringSubmatch(w.String(), -1); len(m) >= n {
			return m, nil
		}
		select {
		case <-p.done:
			if m := re.FindAllStringSubmatch(w.String(), -1); len(m) >= n {
				return m, nil
			}
			return nil, fmt.Errorf("%s: %w (%v): %s", filepath.Base(p.Cmd.Path), ErrExited, p.err, p.Stderr)
		case <-deadline:
			return nil, fmt.Errorf("%s: no %q after %v: %s", filepath.Base(p.Cmd.Path), re, ReadyLimit, p.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Expect is Match for one match on standard output, failing the test
// instead of returning an error; it returns the match and its groups.
func (p *Proc) Expect(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	m, err := p.Match(p.Stdout, re, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m[0]
}

// Signal sends s to the program if it still runs.
func (p *Proc) Signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(s)
	}
}

// Kill kills the program if it still runs and waits until it has exited.
func (p *Proc) Kill() {
	p.Signal(os.Kill)
	<-p.done
}

// Wait waits up to ExitLimit for the program to exit and returns its exit
// code; the test fails if it does not exit or could not be waited for.
func (p *Proc) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(ExitLimit):
		t.Fatalf("%s did not exit within %v", filepath.Base(p.Cmd.Path), ExitLimit)
	}
	return p.exitCode(t)
}

// Stop asks the program to exit with sig (SIGTERM, say) and returns its
// exit code; after ExitLimit it is killed and the test fails.
func (p *Proc) Stop(t testing.TB, sig os.Signal) int {
	t.Helper()
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(ExitLimit):
		t.Errorf("%s pid %d ignored %v for %v; killing it", filepath.Base(p.Cmd.Path), p.Cmd.Process.Pid, sig, ExitLimit)
		p.Kill()
	}
	return p.exitCode(t)
}

func (p *Proc) exitCode(t testing.TB) int {
	t.Helper()
	<-p.done
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("%s: %v", filepath.Base(p.Cmd.Path), p.err)
	}
	return p.Cmd.ProcessState.ExitCode()
}
