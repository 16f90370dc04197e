//go:build unix

package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
)

// maxUnixPath is the longest socket path this system accepts (sun_path
// minus its terminating NUL): 107 bytes on Linux, 103 on macOS and BSD.
var maxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1

// ServePTY makes m reachable on a new pseudo-terminal, the way a VM exposes
// a serial port as a pty: the slave device (reported through opts.Ready,
// for example /dev/pts/5) is in raw mode (8-bit, no echo, no CR/LF
// translation, no signals, no line editing), and the target serves the
// master side. A debugger opens the slave; when it closes it, the master
// sees EIO, which means "no debugger": the master stays open, output queued
// for the departed debugger is flushed, and the target is served again as
// soon as the slave is reopened. ServePTY returns nil when ctx ends.
func ServePTY(ctx context.Context, m *Machine, opts PortOptions) error {
	opts.setDefaults()
	defer m.hold()() // the machine runs while no debugger has the pty open
	master, slavePath, err := serial.OpenPTY()
	if errors.Is(err, serial.ErrNoPTY) {
		err = ErrPTYUnsupported
	}
	if err != nil {
		return err
	}
	defer master.Close()
	opts.ready(slavePath)

	fc := &fileConn{f: master}
	for ctx.Err() == nil {
		open, err := slaveOpen(master)
		if err != nil {
			return fmt.Errorf("pty %s: checking for a debugger: %w", slavePath, err)
		}
		if !open {
			if !sleepCtx(ctx, opts.PollInterval) {
				break
			}
			continue
		}
		fc.reopen()
		serveOne(ctx, m, fc, "pty:"+slavePath, &opts)
		fc.release()
		// Bytes the target wrote after the debugger left would greet the
		// next one as stale packets: drop them.
		flushSlave(slavePath)
		// Where a closed slave does not poll as hung up, this pause keeps
		// the loop from spinning.
		if !sleepCtx(ctx, opts.PollInterval) {
			break
		}
	}
	return nil
}

// slaveOpen reports whether someone holds the slave side open: while nobody
// does, the master polls as hung up.
func slaveOpen(master *os.File) (bool, error) {
	var revents int16
	err := serial.WithFd(master, func(fd int) error {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT}}
		for {
			_, err := unix.Poll(p, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			revents = p[0].Revents
			return err
		}
	})
	if err != nil {
		return false, err
	}
	if revents&unix.POLLNVAL != 0 {
		return false, fmt.Errorf("the pty master is no longer valid")
	}
	return revents&unix.POLLHUP == 0, nil
}

// flushSlave discards whatever is queued toward the slave side. It opens
// the slave briefly; failure only means stale bytes may reach the next
// debugger, which the KD link layer resynchronises over.
func flushSlave(path string) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_ = serial.FlushPTY(fd)
	unix.Close(fd)
}

// fileConn gives one debugger session the use of a long-lived file (the
// pty master) without letting the session close it. Close interrupts
// pending I/O through deadlines and makes later calls fail; wait returns
// once no call is in flight, so the next session cannot lose bytes to a
// reader of the previous one.
type fileConn struct {
	f      deadlineFile
	mu     sync.Mutex
	closed bool
	active sync.WaitGroup
}

// deadlineFile is the part of *os.File that fileConn uses.
type deadlineFile interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}

func (c *fileConn) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.active.Add(1)
	return true
}

func (c *fileConn) Read(b []byte) (int, error) {
	if !c.enter() {
		return 0, net.ErrClosed
	}
	defer c.active.Done()
	return c.f.Read(b)
}

func (c *fileConn) Write(b []byte) (int, error) {
	if !c.enter() {
		return 0, net.ErrClosed
	}
	defer c.active.Done()
	return c.f.Write(b)
}

// Close ends the session's use of the file; the file stays open.
func (c *fileConn) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	if first {
		_ = c.f.SetDeadline(time.Now()) // wake blocked Read/Write
	}
	return nil
}

// reopen lets a new session use the file.
func (c *fileConn) reopen() {
	c.mu.Lock()
	c.closed = false
	c.mu.Unlock()
}

// release closes the session and waits for its calls to return, then
// clears the deadlines for the next session.
func (c *fileConn) release() {
	c.Close()
	c.active.Wait()
	_ = c.f.SetDeadline(time.Time{})
}
