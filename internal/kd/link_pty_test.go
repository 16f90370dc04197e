//go:build linux

package kd

import (
	"os"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The host and target roles over a pseudo-terminal pair, the way a debugger
// meets a target on a serial device: the slave in raw mode is the "serial
// port", the master the other end of the cable.
func TestLinkOverPTY(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	// Raw 8-bit: no echo, no line editing, no CR/LF translation, no signals.
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	// Non-blocking descriptors, so that Close interrupts a pending Read
	// (creack/pty hands out blocking files).
	host := NewLink(pollable(t, slave), Config{Role: RoleHost})
	target := NewLink(pollable(t, master), Config{Role: RoleTarget})
	defer func() {
		host.Close()
		target.Close()
	}()
	exerciseLink(t, host, target, 100)
}

// pollable returns a non-blocking duplicate of f (closing f), which the Go
// runtime's poller serves: deadlines work and Close interrupts a Read.
func pollable(t *testing.T, f *os.File) *os.File {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) }); err != nil || derr != nil {
		t.Fatalf("dup: %v %v", err, derr)
	}
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), f.Name())
}
