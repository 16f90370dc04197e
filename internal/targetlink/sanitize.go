package targetlink

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// errPathChanged refuses a path that changed between the allow-list check
// and the open: a symbolic link appeared where the check saw none.
var errPathChanged = errors.New("the path changed while it was being opened (a symbolic link appeared where the allow-list check saw none)")

// cleanError is an error whose message leaves out every name the operating
// system put into it (paths as resolved on the server, /proc links,
// addresses), while errors.Is and errors.As still see the original.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

// sanitize returns err with a message that is safe to show a remote client:
// what went wrong (the system's error text, a time-out), not where on the
// server it went wrong. Messages to clients name targets as the client gave
// them; the server's own log may say more.
func sanitize(err error) error {
	if err == nil {
		return nil
	}
	return &cleanError{msg: cleanText(err), err: err}
}

func cleanText(err error) string {
	var we *waitError
	var na *NotAllowedError
	var errno syscall.Errno
	switch {
	case errors.As(err, &we):
		s := "no VM started serving it in time: " + cleanText(we.err)
		if we.last != nil {
			s += " (last attempt: " + cleanText(we.last) + ")"
		}
		return s
	case errors.As(err, &na):
		return na.Error()
	case errors.Is(err, errPathChanged):
		return errPathChanged.Error()
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return "failed"
}
