//go:build linux || darwin

package serial

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// sysPort is the Unix implementation: a non-blocking file descriptor owned by
// an *os.File, so the runtime poller implements deadlines and Close.
type sysPort struct {
	f    *os.File
	path string
}

func openSys(path string, baud int) (*sysPort, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(path, err)
	}
	// From here on the descriptor is closed on every error path.
	if err := configure(fd, path, baud); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// os.NewFile sees O_NONBLOCK and registers the descriptor with the
	// runtime poller, which makes deadlines and Close-unblocks-Read work.
	f := os.NewFile(uintptr(fd), path)
	if f == nil {
		unix.Close(fd)
		return nil, &Error{Op: "open", Path: path, Err: errors.New("invalid file descriptor")}
	}
	return &sysPort{f: f, path: path}, nil
}

// configure puts the descriptor in exclusive raw 8N1 mode at baud and drops
// pending input.
func configure(fd int, path string, baud int) error {
	if err := ioctlNoArg(fd, unix.TIOCEXCL); err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return notTTY(path)
		}
		return &Error{Op: "lock", Path: path, Err: err, Hint: "could not take exclusive use of the port"}
	}
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return notTTY(path)
		}
		return &Error{Op: "configure", Path: path, Err: err}
	}
	makeRaw(t)
	if err := setSpeed(t, baud); err != nil {
		return &Error{Op: "configure", Path: path, Err: err, Hint: "standard rates are " + baudList()}
	}
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, t); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return &Error{Op: "configure", Path: path,
				Err:  fmt.Errorf("%w %d: the driver refused it", ErrBaudRate, baud),
				Hint: "standard rates are " + baudList()}
		}
		return &Error{Op: "configure", Path: path, Err: err}
	}
	// Read back: drivers may round a rate they cannot generate exactly.
	got, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return &Error{Op: "configure", Path: path, Err: err}
	}
	if actual := getSpeed(got); actual > 0 && !closeEnough(actual, baud) {
		return &Error{Op: "configure", Path: path,
			Err:  fmt.Errorf("%w %d: the device runs at %d instead", ErrBaudRate, baud, actual),
			Hint: "pick a rate this device can generate, e.g. one of " + baudList()}
	}
	if err := flushInput(fd); err != nil {
		return &Error{Op: "flush", Path: path, Err: err}
	}
	return nil
}

// closeEnough reports whether a device rate is within the 2% that a UART
// receiver tolerates.
func closeEnough(actual, want int) bool {
	d := actual - want
	if d < 0 {
		d = -d
	}
	return d*50 <= want
}

func ioctlNoArg(fd int, req uint) error {
	// TIOCEXCL takes no argument; IoctlSetInt passes 0 as the argument,
	// which the kernel ignores.
	return unix.IoctlSetInt(fd, req, 0)
}

func (p *sysPort) read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if err != nil && errors.Is(err, unix.EIO) {
		err = &Error{Op: "read", Path: p.path, Err: err, Hint: "the device was disconnected or the other end of the pseudo-terminal closed"}
	}
	return n, err
}

func (p *sysPort) write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	if err != nil && errors.Is(err, unix.EIO) {
		err = &Error{Op: "write", Path: p.path, Err: err, Hint: "the device was disconnected or the other end of the pseudo-terminal closed"}
	}
	return n, err
}

func (p *sysPort) close() error { return p.f.Close() }

func (p *sysPort) setReadDeadline(t time.Time) error  { return p.f.SetReadDeadline(t) }
func (p *sysPort) setWriteDeadline(t time.Time) error { return p.f.SetWriteDeadline(t) }

// control runs fn on the raw descriptor while the file is kept open.
func (p *sysPort) control(fn func(fd int) error) error { return WithFd(p.f, fn) }

func (p *sysPort) flushInput() error { return p.control(flushInput) }
func (p *sysPort) drain() error      { return p.control(drainOutput) }

// openError turns an open(2) failure into an error that says what to do.
func openError(path string, err error) error {
	e := &Error{Op: "open", Path: path, Err: err}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		e.Hint = candidates(existingDevices())
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		e.Hint = permissionHint
	case errors.Is(err, unix.EBUSY):
		e.Hint = "the port is in exclusive use by another program; find it with `fuser " + path + "` or `lsof " + path + "`"
	case errors.Is(err, unix.EIO):
		e.Hint = "the device node exists but no UART answers behind it; check the hardware or pick another port (" + candidates(existingDevices()) + ")"
	}
	return e
}

func notTTY(path string) error {
	return &Error{Op: "open", Path: path, Err: unix.ENOTTY, Hint: "this is not a serial device; " + candidates(existingDevices())}
}

// existingDevices lists the serial device nodes present on this machine.
func existingDevices() []string {
	var out []string
	for _, pat := range devicePatterns {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}
