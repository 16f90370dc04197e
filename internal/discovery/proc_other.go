//go:build unix && !linux && !darwin

package discovery

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// processStart returns "" on this platform: only process existence is
// checked.
func processStart(pid int) (string, error) {
	if alive, err := processAlive(pid, ""); err != nil || !alive {
		return "", fmt.Errorf("process %d does not exist", pid)
	}
	return "", nil
}

// processAlive reports whether process pid exists.
func processAlive(pid int, _ string) (bool, error) {
	err := unix.Kill(pid, 0)
	if err == nil || errors.Is(err, unix.EPERM) {
		return true, nil
	}
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	return false, fmt.Errorf("check process %d: %w", pid, err)
}
