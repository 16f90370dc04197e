//go:build linux

package kd

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
)

// The host and target roles over a pseudo-terminal pair, the way a debugger
// meets a target on a serial device: the raw slave is the "serial port",
// the master the other end of the cable. Both descriptors are
// non-blocking, so Close interrupts a pending Read.
func TestLinkOverPTY(t *testing.T) {
	master, path, err := serial.OpenPTY()
	if errors.Is(err, serial.ErrNoPTY) {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	host := NewHostLink(slave, Config{})
	target := NewTargetLink(master, Config{})
	defer func() {
		host.Close()
		target.Close()
	}()
	exerciseLink(t, host, target, 100)
}
