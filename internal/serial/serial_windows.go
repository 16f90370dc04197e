//go:build windows

package serial

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

const exampleDevice = "COM1"

// waitSlice bounds each wait for overlapped I/O so that deadline changes made
// while an operation is pending are noticed: deadlines are approximate to
// this granularity on Windows.
const waitSlice = 50 * time.Millisecond

// sysPort is the Windows implementation: an overlapped handle. Each Read or
// Write issues one overlapped operation and waits for it, for the port's
// close event, or for its deadline.
type sysPort struct {
	h       windows.Handle
	path    string
	closeEv windows.Handle // manual-reset event, set by close
	closed  atomic.Bool
	rmu     sync.Mutex // serialises readers; held by close while tearing down
	wmu     sync.Mutex // serialises writers
	dmu     sync.Mutex // guards the deadlines
	rdl     time.Time
	wdl     time.Time
	once    sync.Once
}

// devicePath maps COM3, com3 and 3 to \\.\COM3; other names are used as given.
func devicePath(path string) string {
	if strings.HasPrefix(path, `\\`) {
		return path
	}
	if isDigits(path) {
		path = "COM" + path
	}
	return `\\.\` + path
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func openSys(path string, baud int) (*sysPort, error) {
	name, err := windows.UTF16PtrFromString(devicePath(path))
	if err != nil {
		return nil, &Error{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil,
		windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OVERLAPPED, 0)
	if err != nil {
		return nil, openError(path, err)
	}
	if err := configure(h, path, baud); err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(h)
		return nil, &Error{Op: "open", Path: path, Err: err}
	}
	return &sysPort{h: h, path: path, closeEv: ev}, nil
}

func configure(h windows.Handle, path string, baud int) error {
	var dcb windows.DCB
	dcb.DCBlength = uint32(unsafe.Sizeof(dcb))
	if err := windows.GetCommState(h, &dcb); err != nil {
		return &Error{Op: "configure", Path: path, Err: err, Hint: "this is not a serial device"}
	}
	dcb.BaudRate = uint32(baud)
	dcb.ByteSize = 8
	dcb.Parity = windows.NOPARITY
	dcb.StopBits = windows.ONESTOPBIT
	// fBinary, DTR and RTS asserted, no flow control, no parity checking,
	// no error or NUL character replacement, no abort on error.
	const fBinary = 0x1
	dcb.Flags = fBinary | windows.DTR_CONTROL_ENABLE | windows.RTS_CONTROL_ENABLE
	if err := windows.SetCommState(h, &dcb); err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return &Error{Op: "configure", Path: path,
				Err:  fmt.Errorf("%w %d: the driver refused it", ErrBaudRate, baud),
				Hint: "standard rates are " + baudList()}
		}
		return &Error{Op: "configure", Path: path, Err: err}
	}
	// Return from ReadFile as soon as one byte is there; otherwise wait
	// (practically) forever. Writes have no driver timeout; deadlines are
	// implemented by cancelling the overlapped operation.
	to := windows.CommTimeouts{
		ReadIntervalTimeout:        windows.INFINITE,
		ReadTotalTimeoutMultiplier: windows.INFINITE,
		ReadTotalTimeoutConstant:   windows.INFINITE - 1,
	}
	if err := windows.SetCommTimeouts(h, &to); err != nil {
		return &Error{Op: "configure", Path: path, Err: err}
	}
	if err := windows.PurgeComm(h, windows.PURGE_RXCLEAR|windows.PURGE_RXABORT); err != nil {
		return &Error{Op: "flush", Path: path, Err: err}
	}
	return nil
}

func openError(path string, err error) error {
	e := &Error{Op: "open", Path: path, Err: err}
	switch {
	case errors.Is(err, windows.ERROR_FILE_NOT_FOUND), errors.Is(err, windows.ERROR_PATH_NOT_FOUND):
		e.Hint = candidates(existingDevices())
	case errors.Is(err, windows.ERROR_ACCESS_DENIED), errors.Is(err, windows.ERROR_SHARING_VIOLATION):
		e.Hint = "the port is in use by another program (a terminal, a debugger, another kdsrv); close it and retry"
	}
	return e
}

// existingDevices lists the COM ports Windows knows about.
func existingDevices() []string {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `HARDWARE\DEVICEMAP\SERIALCOMM`, registry.QUERY_VALUE)
	if err != nil {
		return nil
	}
	defer k.Close()
	names, err := k.ReadValueNames(0)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if v, _, err := k.GetStringValue(n); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func (p *sysPort) deadline(read bool) time.Time {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if read {
		return p.rdl
	}
	return p.wdl
}

func (p *sysPort) setReadDeadline(t time.Time) error {
	p.dmu.Lock()
	p.rdl = t
	p.dmu.Unlock()
	return nil
}

func (p *sysPort) setWriteDeadline(t time.Time) error {
	p.dmu.Lock()
	p.wdl = t
	p.dmu.Unlock()
	return nil
}

func (p *sysPort) pathErr(op string, err error) error {
	return &os.PathError{Op: op, Path: p.path, Err: err}
}

// overlapped runs one overlapped ReadFile or WriteFile and waits for it,
// honouring the deadline and the close event.
func (p *sysPort) overlapped(read bool, b []byte) (int, error) {
	op := "write"
	if read {
		op = "read"
	}
	if p.closed.Load() {
		return 0, p.pathErr(op, os.ErrClosed)
	}
	if dl := p.deadline(read); !dl.IsZero() && !time.Now().Before(dl) {
		return 0, p.pathErr(op, os.ErrDeadlineExceeded)
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return 0, p.pathErr(op, err)
	}
	defer windows.CloseHandle(ev)
	ov := windows.Overlapped{HEvent: ev}
	var done uint32
	if read {
		err = windows.ReadFile(p.h, b, &done, &ov)
	} else {
		err = windows.WriteFile(p.h, b, &done, &ov)
	}
	if err == nil {
		return int(done), nil
	}
	if !errors.Is(err, windows.ERROR_IO_PENDING) {
		return int(done), p.pathErr(op, err)
	}
	for {
		wait := waitSlice
		var cause error
		if dl := p.deadline(read); !dl.IsZero() {
			rem := time.Until(dl)
			if rem <= 0 {
				cause = os.ErrDeadlineExceeded
			} else if rem < wait {
				wait = rem
			}
		}
		if cause == nil {
			r, werr := windows.WaitForMultipleObjects([]windows.Handle{ev, p.closeEv}, false, uint32(wait/time.Millisecond)+1)
			switch {
			case werr != nil:
				cause = werr
			case r == windows.WAIT_OBJECT_0:
				if err := windows.GetOverlappedResult(p.h, &ov, &done, false); err != nil {
					return int(done), p.pathErr(op, err)
				}
				return int(done), nil
			case r == windows.WAIT_OBJECT_0+1:
				cause = os.ErrClosed
			default: // WAIT_TIMEOUT: look at the deadline again
				continue
			}
		}
		// Cancel and collect: bytes that arrived before the cancel are
		// returned, the error is reported on the next call.
		windows.CancelIoEx(p.h, &ov)
		windows.GetOverlappedResult(p.h, &ov, &done, true)
		if done > 0 {
			return int(done), nil
		}
		return 0, p.pathErr(op, cause)
	}
}

func (p *sysPort) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	for {
		n, err := p.overlapped(true, b)
		if n > 0 || err != nil {
			return n, err
		}
		// The driver's (very long) read timeout expired with no data.
	}
}

func (p *sysPort) write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	total := 0
	for total < len(b) {
		n, err := p.overlapped(false, b[total:])
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (p *sysPort) close() error {
	err := p.pathErr("close", os.ErrClosed)
	p.once.Do(func() {
		p.closed.Store(true)
		windows.SetEvent(p.closeEv)
		windows.CancelIoEx(p.h, nil)
		// Wait for pending operations to leave before the handles go.
		p.rmu.Lock()
		p.wmu.Lock()
		err = windows.CloseHandle(p.h)
		windows.CloseHandle(p.closeEv)
		p.wmu.Unlock()
		p.rmu.Unlock()
	})
	return err
}

func (p *sysPort) flushInput() error {
	if p.closed.Load() {
		return os.ErrClosed
	}
	return windows.PurgeComm(p.h, windows.PURGE_RXCLEAR)
}

func (p *sysPort) drain() error {
	if p.closed.Load() {
		return os.ErrClosed
	}
	return windows.FlushFileBuffers(p.h)
}
