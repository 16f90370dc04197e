//go:build unix

package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openBridgePTY creates a pseudo-terminal for the bridge: the debugger
// opens the returned slave path as if it were a serial port.
func openBridgePTY() (string, func(context.Context, *Bridge) error, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return "", nil, fmt.Errorf("-listen pty: %w", err)
	}
	if err := makeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return "", nil, fmt.Errorf("-listen pty: raw mode: %w", err)
	}
	path := slave.Name()
	// Keep no slave descriptor of our own: the debugger opens it. Until
	// then, and between debuggers, reads of the master fail with EIO.
	slave.Close()
	// The master must be non-blocking so that Close interrupts a pending
	// Read (creack/pty hands out a blocking file).
	master, err = nonBlocking(master)
	if err != nil {
		return "", nil, fmt.Errorf("-listen pty: %w", err)
	}
	serve := func(ctx context.Context, b *Bridge) error {
		m := &ptyMaster{f: master, quit: make(chan struct{})}
		defer m.Close()
		stop := context.AfterFunc(ctx, func() { m.Close() })
		defer stop()
		err := b.Serve(ctx, m)
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return path, serve, nil
}

// nonBlocking replaces f by a non-blocking duplicate served by the Go
// runtime's poller (deadlines work, Close interrupts Read).
func nonBlocking(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) }); err != nil {
		f.Close()
		return nil, err
	}
	if derr != nil {
		f.Close()
		return nil, derr
	}
	name := f.Name()
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// makeRaw puts a terminal in raw 8-bit mode: no echo, no line editing, no
// CR/LF translation, no signals.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, ioctlSetTermios, t)
}

// ptyMaster is the master side of the bridge's pty. While no debugger
// holds the slave open, reads fail with EIO: it waits and retries instead
// of ending the session, so debuggers can come and go.
type ptyMaster struct {
	f    *os.File
	once sync.Once
	quit chan struct{}
}

func (m *ptyMaster) Read(b []byte) (int, error) {
	for {
		n, err := m.f.Read(b)
		if err == nil || !errors.Is(err, syscall.EIO) {
			return n, err
		}
		select {
		case <-m.quit:
			return 0, os.ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *ptyMaster) Write(b []byte) (int, error) {
	n, err := m.f.Write(b)
	if errors.Is(err, syscall.EIO) {
		return len(b), nil // no debugger: the bytes are lost, as on a cable
	}
	return n, err
}

func (m *ptyMaster) SetWriteDeadline(t time.Time) error { return m.f.SetWriteDeadline(t) }

func (m *ptyMaster) Close() error {
	m.once.Do(func() { close(m.quit) })
	return m.f.Close()
}
