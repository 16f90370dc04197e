//go:build unix && !linux

package discovery

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// signalAlive reports whether process pid exists, by sending it signal 0
// (EPERM: it exists but belongs to another user).
func signalAlive(pid int) (bool, error) {
	err := unix.Kill(pid, 0)
	if err == nil || errors.Is(err, unix.EPERM) {
		return true, nil
	}
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	return false, fmt.Errorf("check process %d: %w", pid, err)
}
