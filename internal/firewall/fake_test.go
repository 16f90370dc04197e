package firewall

import (
	"context"
	"os/exec"
	"testing"
)

type fakeReply struct {
	out  string
	code int // 0: success; otherwise the exit status
}

// fakeRunner answers a fixed set of command lines and records the calls.
type fakeRunner struct {
	t         *testing.T
	installed map[string]bool
	replies   map[string]fakeReply // keyed by shellJoin(argv)
	prefix    []string
	calls     []string
}

func (r *fakeRunner) CommandPrefix() []string { return r.prefix }

func (r *fakeRunner) LookPath(name string) (string, error) {
	if r.installed[name] {
		return "/usr/sbin/" + name, nil
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func (r *fakeRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	key := shellJoin(argv)
	r.calls = append(r.calls, key)
	rep, ok := r.replies[key]
	if !ok {
		r.t.Errorf("unexpected command: %s", key)
		return nil, &CmdError{Cmd: key, ExitCode: 127, Stderr: "not scripted"}
	}
	if rep.code != 0 {
		return nil, &CmdError{Cmd: key, ExitCode: rep.code, Stderr: rep.out}
	}
	return []byte(rep.out), nil
}
