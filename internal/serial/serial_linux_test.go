//go:build linux

package serial_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

const inqRequest = unix.TIOCINQ

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
