//go:build darwin

package serial_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// inqRequest is FIONREAD (_IOR('f', 127, int)), which x/sys/unix does not export for darwin.
const inqRequest = 0x4004667f

func getTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tio *unix.Termios
	var ierr error
	rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), unix.TIOCGETA) })
	if ierr != nil {
		t.Fatalf("TIOCGETA: %v", ierr)
	}
	return tio
}

func speedOf(tio *unix.Termios) int { return int(tio.Ospeed) }
