//go:build unix && !linux && !darwin

package discovery

import "fmt"

// processStart returns "" on this platform: only process existence is
// checked.
func processStart(pid int) (string, error) {
	if alive, err := processAlive(pid, ""); err != nil || !alive {
		return "", fmt.Errorf("process %d does not exist", pid)
	}
	return "", nil
}

// processAlive reports whether process pid exists.
func processAlive(pid int, _ string) (bool, error) { return signalAlive(pid) }
