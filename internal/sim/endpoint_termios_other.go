//go:build aix || linux || solaris

package sim

import "golang.org/x/sys/unix"

// Terminal ioctls of System V flavoured systems.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)

// flushTTY discards both queues of a terminal.
func flushTTY(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) }
