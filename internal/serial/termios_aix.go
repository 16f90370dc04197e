//go:build aix

package serial

import "golang.org/x/sys/unix"

// Terminal ioctls of AIX.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
	// hwFlowControl: AIX's termios has no RTS/CTS flag to clear.
	hwFlowControl = 0
)

// FlushPTY discards both queues of a terminal.
func FlushPTY(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) }
