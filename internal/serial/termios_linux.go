//go:build linux && !ppc64 && !ppc64le

package serial

import "golang.org/x/sys/unix"

// termios2 requests: they carry the numeric input and output speeds that
// BOTHER needs.
const (
	ioctlGetTermios = unix.TCGETS2
	ioctlSetTermios = unix.TCSETS2
	// hwFlowControl is the RTS/CTS flow control flag makeRaw clears.
	hwFlowControl = unix.CRTSCTS
)

// FlushPTY discards both queues of a terminal.
func FlushPTY(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) }
