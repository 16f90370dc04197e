//go:build unix

package testkit

import (
	"os"
	"syscall"
	"testing"

	"kdsrv/internal/serial"
)

// OpenPTYSlave opens the pseudo-terminal slave at path the way a debugger
// opens its serial device: read-write, not as the controlling terminal, in
// raw mode. The caller closes it.
func OpenPTYSlave(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if err := serial.WithFd(f, serial.MakeRaw); err != nil {
		f.Close()
		t.Fatalf("raw mode on %s: %v", path, err)
	}
	return f
}
