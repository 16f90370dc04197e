package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStatus reads the peak resident set size (VmHWM, in KiB) and the
// thread count of process pid from /proc.
func procStatus(pid int) (peakKiB int64, threads int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peakKiB = n
		case "Threads":
			threads = int(n)
		}
	}
	if peakKiB == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return peakKiB, threads, sc.Err()
}
