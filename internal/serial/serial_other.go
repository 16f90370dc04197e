//go:build !linux && !darwin && !windows

package serial

import (
	"errors"
	"runtime"
	"time"
)

const exampleDevice = "a serial device"

type sysPort struct{}

func openSys(path string, baud int) (*sysPort, error) {
	return nil, &Error{Op: "open", Path: path,
		Err:  errors.New("serial ports are not supported on " + runtime.GOOS),
		Hint: "use Linux, macOS or Windows, or a VM serial pipe instead"}
}

func (*sysPort) read([]byte) (int, error)         { return 0, errors.ErrUnsupported }
func (*sysPort) write([]byte) (int, error)        { return 0, errors.ErrUnsupported }
func (*sysPort) close() error                     { return errors.ErrUnsupported }
func (*sysPort) setReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (*sysPort) setWriteDeadline(time.Time) error { return errors.ErrUnsupported }
func (*sysPort) flushInput() error                { return errors.ErrUnsupported }
func (*sysPort) drain() error                     { return errors.ErrUnsupported }
