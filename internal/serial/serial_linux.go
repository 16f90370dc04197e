//go:build linux

package serial

import "golang.org/x/sys/unix"

const (
	exampleDevice  = "/dev/ttyS0 or /dev/ttyUSB0"
	permissionHint = "add your user to the dialout group (sudo usermod -aG dialout $USER, then log in again) or run as root"
)

var devicePatterns = []string{"/dev/ttyS*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*"}

// linuxRates maps the rates that have a Bxxx constant to that constant.
var linuxRates = map[int]uint32{
	50: unix.B50, 75: unix.B75, 110: unix.B110, 134: unix.B134, 150: unix.B150,
	200: unix.B200, 300: unix.B300, 600: unix.B600, 1200: unix.B1200,
	1800: unix.B1800, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600,
	1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000,
	2000000: unix.B2000000, 2500000: unix.B2500000, 3000000: unix.B3000000,
	3500000: unix.B3500000, 4000000: unix.B4000000,
}

// setSpeed sets the input and output rate. Rates without a Bxxx constant use
// BOTHER with the numeric rate in the speed fields (termios2).
func setSpeed(t *unix.Termios, baud int) error {
	t.Cflag &^= unix.CBAUD | unix.CIBAUD
	if b, ok := linuxRates[baud]; ok {
		t.Cflag |= b
	} else {
		t.Cflag |= unix.BOTHER
	}
	t.Ispeed = uint32(baud)
	t.Ospeed = uint32(baud)
	return nil
}

// getSpeed returns the output rate stored in t, or 0 if unknown.
func getSpeed(t *unix.Termios) int {
	c := t.Cflag & unix.CBAUD
	if c == unix.BOTHER {
		return int(t.Ospeed)
	}
	for rate, b := range linuxRates {
		if b == c {
			return rate
		}
	}
	return 0
}

func flushInput(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) }

// drainOutput is tcdrain: TCSBRK with a non-zero argument waits for the
// output queue to empty without sending a break.
func drainOutput(fd int) error { return unix.IoctlSetInt(fd, unix.TCSBRK, 1) }
