//go:build linux

package serial_test

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

const inqRequest = unix.TIOCINQ

func getTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tio *unix.Termios
	var ierr error
	rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), unix.TCGETS2) })
	if ierr != nil {
		t.Fatalf("TCGETS2: %v", ierr)
	}
	return tio
}

func speedOf(tio *unix.Termios) int { return int(tio.Ospeed) }

func TestExclusiveMode(t *testing.T) {
	_, p := openPair(t, 115200)
	fd, err := unix.Open(p.Name(), unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return // non-root: the second open is refused, as intended
		}
		t.Fatalf("second open: %v", err)
	}
	defer unix.Close(fd)
	// Root may open an exclusive tty anyway; check the flag itself.
	excl, err := unix.IoctlGetInt(fd, unix.TIOCGEXCL)
	if err != nil {
		t.Fatalf("TIOCGEXCL: %v", err)
	}
	if excl == 0 {
		t.Fatal("port is not in exclusive mode")
	}
}
