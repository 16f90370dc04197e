//go:build unix

package dbgport

import (
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

// PTY is a debugger port on a new pseudo-terminal, the way a VM exposes a
// serial port as a pty: the slave device (Path, such as /dev/pts/5) is in
// raw mode, a debugger opens it, and Serve serves the master side. It is a
// net.Listener for Serve: Accept returns a connection each time a
// debugger has the slave open. A pty has one slave, so a debugger is never
// replaced, only followed: when it closes the slave (the master then sees
// EIO, which means "no debugger"), its connection ends, output queued for
// it is flushed, and the next Accept waits for the slave to be reopened.
// The master stays open until Close.
type PTY struct {
	master *os.File
	path   string
	poll   time.Duration
	quit   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	cur *ptyConn // the connection Accept returned last
}

// ListenPTY allocates a pseudo-terminal for a debugger port. poll is how
// often Accept looks for a debugger while none has the slave open
// (100ms when 0). Where the system has no pseudo-terminals the error is
// serial.ErrNoPTY.
func ListenPTY(poll time.Duration) (*PTY, error) {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	master, path, err := serial.OpenPTY()
	if err != nil {
		return nil, err
	}
	return &PTY{master: master, path: path, poll: poll, quit: make(chan struct{})}, nil
}

// Path is the slave device a debugger opens.
func (l *PTY) Path() string { return l.path }

// Addr is the slave device, network "pty".
func (l *PTY) Addr() net.Addr { return ptyAddr(l.path) }

// Close closes the master: Accept and the current connection fail.
func (l *PTY) Close() error {
	var err error
	l.once.Do(func() {
		close(l.quit)
		err = l.master.Close()
	})
	return err
}

// Accept waits until the connection it returned before is closed and a
// debugger has the slave open, and returns a connection to it.
func (l *PTY) Accept() (net.Conn, error) {
	l.mu.Lock()
	prev := l.cur
	l.mu.Unlock()
	if prev != nil {
		select {
		case <-prev.closed:
		case <-l.quit:
			return nil, net.ErrClosed
		}
		prev.active.Wait() // no call of the old session is in flight
		_ = l.master.SetDeadline(time.Time{})
		// Bytes written after the debugger left would greet the next one
		// as stale packets: drop them.
		flushSlave(l.path)
		// Where a closed slave does not poll as hung up, this pause keeps
		// the loop from spinning.
		if !l.sleep() {
			return nil, net.ErrClosed
		}
	}
	for {
		open, err := slaveOpen(l.master)
		if err != nil {
			return nil, fmt.Errorf("pty %s: checking for a debugger: %w", l.path, err)
		}
		if open {
			break
		}
		if !l.sleep() {
			return nil, net.ErrClosed
		}
	}
	c := &ptyConn{f: l.master, addr: ptyAddr(l.path), closed: make(chan struct{})}
	l.mu.Lock()
	l.cur = c
	l.mu.Unlock()
	return c, nil
}

// sleep waits one poll interval; it reports false when l was closed.
func (l *PTY) sleep() bool {
	t := time.NewTimer(l.poll)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.quit:
		return false
	}
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

// ptyConn is one debugger's use of the pty master, which outlives it:
// Close interrupts pending I/O through deadlines and makes later calls
// fail, but leaves the master open; the PTY waits until no call is in
// flight before the next debugger's connection, so it cannot lose bytes
// to a reader of the previous one.
type ptyConn struct {
	f      deadlineFile
	addr   ptyAddr
	mu     sync.Mutex
	closed chan struct{} // closed by Close
	active sync.WaitGroup
}

// deadlineFile is the part of *os.File that ptyConn uses.
type deadlineFile interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}

// isClosed reports whether Close was called; c.mu is held.
func (c *ptyConn) isClosed() bool { return isDone(c.closed) }

// do runs op (the master's Read or Write) on b unless the connection is
// closed; Close wakes it, and the next Accept waits for it to end.
func (c *ptyConn) do(op func([]byte) (int, error), b []byte) (int, error) {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.active.Add(1)
	c.mu.Unlock()
	defer c.active.Done()
	return op(b)
}

func (c *ptyConn) Read(b []byte) (int, error) { return c.do(c.f.Read, b) }

func (c *ptyConn) Write(b []byte) (int, error) { return c.do(c.f.Write, b) }

// Close ends this debugger's use of the master; the master stays open.
func (c *ptyConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		return nil
	}
	close(c.closed)
	_ = c.f.SetDeadline(time.Now()) // wake blocked Read/Write
	return nil
}

func (c *ptyConn) LocalAddr() net.Addr  { return c.addr }
func (c *ptyConn) RemoteAddr() net.Addr { return c.addr }

// The master's deadlines belong to the PTY (Close and Accept use them to
// hand the master from one debugger to the next): a connection cannot set
// its own.
func (c *ptyConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *ptyConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *ptyConn) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("a pty debugger connection has no deadlines of its own")

// ptyAddr names a pty port by its slave device.
type ptyAddr string

func (a ptyAddr) Network() string { return "pty" }
func (a ptyAddr) String() string  { return string(a) }
