//go:build unix

package serial

import (
	"errors"
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ErrNoPTY is returned where the system has no pseudo-terminals.
var ErrNoPTY = pty.ErrUnsupported

// OpenPTY allocates a pseudo-terminal pair for a KDCOM endpoint: the slave
// is what a debugger opens as a serial device, the master the other end of
// the cable. The slave is put in raw 8-bit mode and closed (so that no
// descriptor of ours keeps it open and the master reads EIO until a
// debugger opens it); the master is returned non-blocking, served by the
// runtime poller, so deadlines work and Close interrupts a pending Read
// (creack/pty hands out blocking files).
func OpenPTY() (master *os.File, slavePath string, err error) {
	m, s, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		return nil, "", ErrNoPTY
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

// MakeRaw puts the terminal fd in the raw 8N1 mode a KD link needs (see
// makeRaw), keeping its speed.
func MakeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return err
	}
	makeRaw(t)
	return unix.IoctlSetTermios(fd, ioctlSetTermios, t)
}

// makeRaw applies the equivalent of cfmakeraw plus 8N1, receiver on, modem
// control lines ignored, no flow control.
func makeRaw(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | hwFlowControl | unix.HUPCL
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	// Non-blocking descriptor: VMIN/VTIME only matter to blocking readers,
	// but set the conventional "return as soon as one byte is there".
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
}
