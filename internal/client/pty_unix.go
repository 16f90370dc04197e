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

	"kdsrv/internal/serial"
)

// OpenBridgePTY creates a pseudo-terminal for the bridge: the debugger
// opens the returned slave path as if it were a serial port.
func OpenBridgePTY() (string, func(context.Context, *Bridge) error, error) {
	// The master is non-blocking (Close interrupts a pending Read); no
	// slave descriptor of our own is kept: the debugger opens it. Until
	// then, and between debuggers, reads of the master fail with EIO.
	master, path, err := serial.OpenPTY()
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
