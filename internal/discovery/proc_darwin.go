//go:build darwin

package discovery

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// processStart returns a token that identifies when process pid started
// (the kernel's p_starttime in microseconds).
func processStart(pid int) (string, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return "", fmt.Errorf("read start time of process %d: %w", pid, err)
	}
	if int(kp.Proc.P_pid) != pid {
		return "", fmt.Errorf("process %d does not exist", pid)
	}
	tv := kp.Proc.P_starttime
	return strconv.FormatInt(int64(tv.Sec)*1e6+int64(tv.Usec), 10), nil
}

// processAlive reports whether process pid exists. macOS checks existence
// only (start is not compared), as pid reuse is rare within a server's life.
func processAlive(pid int, _ string) (bool, error) { return signalAlive(pid) }
