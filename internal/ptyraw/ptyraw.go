//go:build unix

// Package ptyraw allocates pseudo-terminals for KDCOM endpoints: the slave
// in raw 8-bit mode (what a debugger opens as a serial device) and a
// non-blocking master served by the Go runtime poller, so that deadlines
// work and Close interrupts a pending Read (creack/pty hands out blocking
// files).
package ptyraw

import (
	"errors"
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned where the system has no pseudo-terminals.
var ErrUnsupported = pty.ErrUnsupported

// Open allocates a pty pair, puts the slave in raw mode and closes it (so
// that no debugger holding it reads as EIO on the master), and returns the
// non-blocking master and the slave's path.
func Open() (master *os.File, slavePath string, err error) {
	m, s, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		return nil, "", ErrUnsupported
	}
	if err != nil {
		return nil, "", fmt.Errorf("pty: cannot allocate a pseudo-terminal: %w (is /dev/ptmx available?)", err)
	}
	path := s.Name()
	rerr := WithFd(s, MakeRaw)
	s.Close()
	if rerr != nil {
		m.Close()
		return nil, "", fmt.Errorf("pty %s: cannot set raw mode: %w", path, rerr)
	}
	var fd int
	derr := WithFd(m, func(f int) error {
		var err error
		fd, err = unix.Dup(f)
		return err
	})
	m.Close()
	if derr != nil {
		return nil, "", fmt.Errorf("pty %s: cannot duplicate the master: %w", path, derr)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("pty %s: cannot make the master non-blocking: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), path, nil
}

// WithFd runs fn on f's descriptor without switching f to blocking mode
// (as f.Fd would).
func WithFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// MakeRaw puts a terminal in raw mode, as cfmakeraw does: 8-bit
// characters, no parity, no echo, no input or output translation, no
// signals or line editing, reads return as soon as one byte is there.
func MakeRaw(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, ioctlSetTermios, tio)
}
