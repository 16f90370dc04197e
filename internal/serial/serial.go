// Package serial opens serial devices (RS-232 UARTs, USB serial adapters,
// pseudo-terminals) as raw 8N1 byte streams for kdsrv.
//
// A Port is configured for raw binary traffic: 8 data bits, no parity, one
// stop bit, no hardware or software flow control, no echo, no line-ending
// translation and no signal characters, at the requested baud rate. It
// implements io.ReadWriteCloser and the deadline methods of net.Conn, so it
// can be handed to code written for network connections (the KDCOM link
// layer, the COM channel multiplexer in internal/commux).
//
// It is also the one place that sets raw terminal modes: OpenPTY allocates
// a pseudo-terminal whose slave a debugger opens as a serial device (used
// by kdtarget and kdclient -listen pty), and MakeRaw puts any terminal in
// the same raw 8N1 mode as a Port. The termios requests are in one
// constants file per platform family (termios_*.go).
//
// Platform notes:
//
//   - Linux: the device is opened non-blocking and handed to the Go runtime
//     poller, so deadlines are exact and Close unblocks pending I/O. Standard
//     rates use the Bxxx constants; other rates use termios2 with BOTHER when
//     the driver supports it. The port is put in exclusive mode (TIOCEXCL).
//   - macOS: as Linux, with TIOCGETA/TIOCSETA; the rate is stored as a plain
//     number, so any rate the driver accepts works. Prefer /dev/cu.* devices.
//   - Windows: the port (COM1, COM10, \\.\COM3) is opened for overlapped I/O.
//     Deadlines are honoured with a granularity of about 50 ms, and Close
//     cancels pending I/O.
package serial

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// StandardBaudRates lists the rates every supported platform can set without
// driver-specific extensions, in ascending order.
var StandardBaudRates = []int{
	50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600,
	19200, 38400, 57600, 115200, 230400,
}

// ErrBaudRate is wrapped by errors from Open when the baud rate cannot be set.
var ErrBaudRate = errors.New("unsupported baud rate")

// Error describes a failed operation on a serial device. Hint, when set, tells
// the user what to do about it.
type Error struct {
	Op   string // "open", "configure", "flush", ...
	Path string // the device as given to Open
	Err  error  // the underlying error
	Hint string // advice for the user; may be empty
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("serial: ")
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Port is an open serial device in raw 8N1 mode. It is safe for one reader and
// one writer to use it concurrently; Close may be called at any time and
// unblocks pending Read and Write calls.
type Port struct {
	name string
	baud int
	sys  *sysPort
}

// Open opens the serial device path in raw mode, 8 data bits, no parity, one
// stop bit, no flow control, at the given baud rate. Any rate the device
// accepts is allowed. Pending input is discarded after configuration.
func Open(path string, baud int) (*Port, error) {
	if path == "" {
		return nil, &Error{Op: "open", Path: `""`, Err: errors.New("empty device name"), Hint: "name a device such as " + exampleDevice}
	}
	if baud <= 0 {
		return nil, &Error{Op: "open", Path: path, Err: fmt.Errorf("%w %d", ErrBaudRate, baud), Hint: "the baud rate must be a positive number, e.g. 115200"}
	}
	sys, err := openSys(path, baud)
	if err != nil {
		return nil, err
	}
	return &Port{name: path, baud: baud, sys: sys}, nil
}

// Name returns the device path as given to Open.
func (p *Port) Name() string { return p.name }

// Baud returns the baud rate the port was opened with.
func (p *Port) Baud() int { return p.baud }

// String describes the port, e.g. "/dev/ttyS0@115200".
func (p *Port) String() string { return p.name + "@" + strconv.Itoa(p.baud) }

// Read reads raw bytes from the port. It blocks until at least one byte is
// available, the read deadline passes (os.ErrDeadlineExceeded), or the port is
// closed (os.ErrClosed).
func (p *Port) Read(b []byte) (int, error) { return p.sys.read(b) }

// Write writes raw bytes to the port. It blocks until all bytes are handed to
// the driver, the write deadline passes, or the port is closed.
func (p *Port) Write(b []byte) (int, error) { return p.sys.write(b) }

// Close closes the port and unblocks pending Read and Write calls. Closing an
// already closed port returns an error wrapping os.ErrClosed.
func (p *Port) Close() error { return p.sys.close() }

// SetDeadline sets both the read and the write deadline. A zero time means no
// deadline.
func (p *Port) SetDeadline(t time.Time) error {
	if err := p.sys.setReadDeadline(t); err != nil {
		return err
	}
	return p.sys.setWriteDeadline(t)
}

// SetReadDeadline sets the deadline for pending and future Read calls.
func (p *Port) SetReadDeadline(t time.Time) error { return p.sys.setReadDeadline(t) }

// SetWriteDeadline sets the deadline for pending and future Write calls.
func (p *Port) SetWriteDeadline(t time.Time) error { return p.sys.setWriteDeadline(t) }

// Flush discards input that was received but not yet read. It is useful
// right after Open, to drop line noise and stale bytes from a previous user.
func (p *Port) Flush() error {
	if err := p.sys.flushInput(); err != nil {
		return &Error{Op: "flush", Path: p.name, Err: err}
	}
	return nil
}

// Drain blocks until all bytes written so far have been transmitted by the
// device (POSIX tcdrain), so that closing or reconfiguring the port does not
// cut off the tail of the output.
func (p *Port) Drain() error {
	if err := p.sys.drain(); err != nil {
		return &Error{Op: "drain", Path: p.name, Err: err}
	}
	return nil
}

// baudList renders StandardBaudRates for error messages.
func baudList() string {
	s := make([]string, len(StandardBaudRates))
	for i, r := range StandardBaudRates {
		s[i] = strconv.Itoa(r)
	}
	return strings.Join(s, ", ")
}

// candidates renders a list of device names for a "not found" hint.
func candidates(names []string) string {
	if len(names) == 0 {
		return "no serial devices were found on this machine"
	}
	sort.Strings(names)
	const max = 12
	more := ""
	if len(names) > max {
		more = fmt.Sprintf(" and %d more", len(names)-max)
		names = names[:max]
	}
	return "serial devices present: " + strings.Join(names, ", ") + more
}
