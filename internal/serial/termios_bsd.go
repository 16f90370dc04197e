//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package serial

import "golang.org/x/sys/unix"

// Terminal ioctls of BSD flavoured systems: their termios carries numeric
// speeds.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
	// hwFlowControl is the RTS/CTS flow control flag makeRaw clears.
	hwFlowControl = unix.CRTSCTS
)

// FlushPTY discards both queues of a terminal (TIOCFLUSH with 0 means input
// and output).
func FlushPTY(fd int) error { return unix.IoctlSetPointerInt(fd, unix.TIOCFLUSH, 0) }
