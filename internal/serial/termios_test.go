//go:build linux || darwin

package serial_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
)

// getTermios reads the settings of the terminal f.
func getTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tio *unix.Termios
	var ierr error
	rc.Control(func(fd uintptr) { tio, ierr = unix.IoctlGetTermios(int(fd), serial.IoctlGetTermios) })
	if ierr != nil {
		t.Fatalf("reading the terminal settings: %v", ierr)
	}
	return tio
}

func speedOf(tio *unix.Termios) int { return int(tio.Ospeed) }
