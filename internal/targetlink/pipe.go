package targetlink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"time"

	"kdsrv/internal/spec"
)

// openPipe connects to the VM pipe at pl. With t.Reconnect it waits for a
// pipe that nobody serves yet, and the link redials when the VM goes away;
// every redial checks the allow-list again, so a path that has since become
// a symbolic link elsewhere is not followed. Every connection is made to the
// object the allow-list checked (dialPinned), never to whatever a symbolic
// link swapped in meanwhile points to.
func openPipe(ctx context.Context, pl *place, t *spec.Target, allow *AllowList) (Stream, error) {
	dial := func(ctx context.Context) (net.Conn, error) {
		again, err := allow.admit(ctx, t, false)
		if err != nil {
			return nil, err
		}
		return dialPinned(ctx, again.real)
	}
	c, err := dialPinned(ctx, pl.real)
	if err != nil && t.Reconnect && vmAbsent(err) {
		c, err = waitForPipe(ctx, dial)
	}
	if err != nil {
		return nil, pipeError(pl, t.Reconnect, err)
	}
	return &pipeLink{streamLink: newStreamLink(pl.desc, c, dial, t.Reconnect), resets: t.Resets}, nil
}

// vmAbsent reports whether a dial error means that no VM serves the pipe
// (yet): it does not exist, or nothing listens on the socket file.
func vmAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || isRefused(err)
}

// waitForPipe dials with back-off until the pipe is served or ctx is done.
func waitForPipe(ctx context.Context, dial dialFunc) (net.Conn, error) {
	backoff := minBackoff
	t := time.NewTimer(backoff)
	defer t.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return nil, &waitError{ctx.Err(), last}
		case <-t.C:
		}
		c, err := dial(ctx)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, &waitError{ctx.Err(), last}
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// The dial saw the deadline before ctx.Done was closed.
			return nil, &waitError{err, last}
		}
		if !vmAbsent(err) {
			return nil, err
		}
		last = err
		backoff = min(2*backoff, maxBackoff)
		t.Reset(backoff)
	}
}

// waitError is returned when the wait for a VM pipe ran out of time.
type waitError struct{ err, last error }

func (e *waitError) Error() string {
	s := "no VM started serving it in time: " + e.err.Error()
	if e.last != nil {
		s += " (last attempt: " + e.last.Error() + ")"
	}
	return s
}

func (e *waitError) Unwrap() error { return e.err }

// pipeError explains a failure to connect to a VM pipe. It names the path
// as the client gave it, never where it leads on the server.
func pipeError(pl *place, reconnect bool, err error) error {
	var na *NotAllowedError
	var we *waitError
	switch {
	case errors.As(err, &na):
		return err
	case errors.Is(err, errPathChanged):
		return fmt.Errorf("target %s: refused: %w; try again; if this repeats, someone is replacing files in the pipe's directory", quote(pl.desc), errPathChanged)
	case errors.As(err, &we):
		return wrapTarget(pl.desc, "waited for the VM", sanitize(err), "start the VM, or give kdsrv more time")
	case errors.Is(err, fs.ErrNotExist):
		hint := "start the VM first, or add ,reconnect to wait for it"
		if reconnect {
			hint = "start the VM first"
		}
		return wrapTarget(pl.desc, "no VM is serving "+pl.given, sanitize(err), hint)
	case isRefused(err):
		hint := "start the VM first, or add ,reconnect to wait for it"
		if reconnect {
			hint = "start the VM first"
		}
		return wrapTarget(pl.desc, "nothing listens on "+pl.given+" (the VM is not running)", sanitize(err), hint)
	case errors.Is(err, fs.ErrPermission):
		return wrapTarget(pl.desc, "permission denied", sanitize(err),
			"the pipe belongs to the VM's user: give kdsrv's user access to it (group or mode), or run kdsrv as that user")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return wrapTarget(pl.desc, "gave up connecting", sanitize(err), "")
	}
	return wrapTarget(pl.desc, "cannot connect to the VM pipe", sanitize(err), pipeHint)
}
