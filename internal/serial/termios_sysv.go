//go:build solaris || (linux && (ppc64 || ppc64le))

package serial

import "golang.org/x/sys/unix"

// Terminal ioctls of System V flavoured systems. On Linux/powerpc the
// plain termios already carries the numeric speeds and there is no
// termios2.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
	// hwFlowControl is the RTS/CTS flow control flag makeRaw clears.
	hwFlowControl = unix.CRTSCTS
)

// FlushPTY discards both queues of a terminal.
func FlushPTY(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) }
