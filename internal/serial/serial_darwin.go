//go:build darwin

package serial

import "golang.org/x/sys/unix"

const (
	exampleDevice  = "/dev/cu.usbserial-0001"
	permissionHint = "check the device permissions (ls -l) or run as root"
)

var devicePatterns = []string{"/dev/cu.*"}

// setSpeed stores the numeric rate: BSD termios has no Bxxx encoding, so any
// rate the driver accepts can be requested.
func setSpeed(t *unix.Termios, baud int) error {
	t.Ispeed = uint64(baud)
	t.Ospeed = uint64(baud)
	return nil
}

func getSpeed(t *unix.Termios) int { return int(t.Ospeed) }

// flushInput is tcflush(TCIFLUSH): TIOCFLUSH with FREAD.
func flushInput(fd int) error {
	const fread = 0x1 // FREAD from <sys/fcntl.h>
	return unix.IoctlSetPointerInt(fd, unix.TIOCFLUSH, fread)
}

// drainOutput is tcdrain.
func drainOutput(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCDRAIN, 0) }
