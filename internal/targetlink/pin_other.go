//go:build !linux && !windows

package targetlink

import (
	"context"
	"errors"
	"net"
	"os"

	"kdsrv/internal/serial"
)

// dialPinned connects to the unix socket at real, the path the allow-list
// admitted, and checks afterwards that the name still leads to the object
// it led to before: a symbolic link swapped in between is refused. This
// system has no /proc/self/fd to connect through a held descriptor, so a
// swap and a swap back within the few microseconds of the connect cannot
// be excluded (Linux excludes it; docs/security.md).
func dialPinned(ctx context.Context, real string) (net.Conn, error) {
	before, err := lstatObject(real)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", real)
	if err != nil {
		return nil, err
	}
	after, err := lstatObject(real)
	if err != nil || !os.SameFile(before, after) {
		_ = c.Close()
		return nil, errPathChanged
	}
	return c, nil
}

// lstatObject returns what real names, refusing a symbolic link.
func lstatObject(real string) (os.FileInfo, error) {
	fi, err := os.Lstat(real)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, errPathChanged
	}
	return fi, nil
}

// openSerialPinned opens the serial device at real and checks, as
// dialPinned does, that it is the object the allow-list checked.
func openSerialPinned(real string, baud int) (*serial.Port, error) {
	before, err := lstatObject(real)
	if err != nil {
		return nil, err
	}
	p, err := serial.Open(real, baud)
	if err != nil {
		return nil, err
	}
	after, err := lstatObject(real)
	if err != nil || !os.SameFile(before, after) {
		_ = p.Close()
		return nil, errPathChanged
	}
	return p, nil
}
