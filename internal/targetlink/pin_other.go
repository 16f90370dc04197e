//go:build !linux && !windows

package targetlink

import (
	"errors"
	"io"
	"os"
)

// openVerified opens real, the path the allow-list admitted, with open,
// and checks afterwards that the name still leads to the object it led to
// before: a symbolic link swapped in between is refused. This system has
// no /proc/self/fd to open through a held descriptor, so a swap and a swap
// back within the few microseconds of the open cannot be excluded (Linux
// excludes it; docs/security.md).
func openVerified[T io.Closer](real string, open func(path string) (T, error)) (T, error) {
	var none T
	before, err := lstatObject(real)
	if err != nil {
		return none, err
	}
	c, err := open(real)
	if err != nil {
		return none, err
	}
	after, err := lstatObject(real)
	if err != nil || !os.SameFile(before, after) {
		_ = c.Close()
		return none, errPathChanged
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
