//go:build aix || linux || solaris

package ptyraw

import "golang.org/x/sys/unix"

// Terminal ioctls of System V flavoured systems.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)

// Flush discards both queues of a terminal.
func Flush(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) }
