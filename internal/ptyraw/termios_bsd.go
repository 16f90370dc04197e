//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package ptyraw

import "golang.org/x/sys/unix"

// Terminal ioctls of BSD flavoured systems.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)

// Flush discards both queues of a terminal (TIOCFLUSH with 0 means input
// and output).
func Flush(fd int) error { return unix.IoctlSetPointerInt(fd, unix.TIOCFLUSH, 0) }
