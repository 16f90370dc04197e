//go:build linux

package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// processStart returns a token that identifies when process pid started: the
// starttime field (clock ticks since boot) of /proc/<pid>/stat. Two
// processes that reuse a pid have different tokens.
func processStart(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("process %d does not exist", pid)
		}
		return "", fmt.Errorf("read start time of process %d: %w", pid, err)
	}
	start, state, err := parseStat(data)
	if err != nil {
		return "", err
	}
	if state == 'Z' || state == 'X' {
		return "", fmt.Errorf("process %d has exited", pid)
	}
	return start, nil
}

// parseStat extracts field 22 (starttime) and field 3 (state) from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and may itself contain
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(data []byte) (start string, state byte, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", 0, errors.New("malformed /proc stat line: no ')'")
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", 0, errors.New("malformed /proc stat line: too few fields")
	}
	if _, err := strconv.ParseUint(string(fields[19]), 10, 64); err != nil {
		return "", 0, fmt.Errorf("malformed /proc stat start time %q", fields[19])
	}
	return string(fields[19]), fields[0][0], nil
}

// processAlive reports whether process pid exists and, when start is not
// empty, started at the time identified by start.
func processAlive(pid int, start string) (bool, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("check process %d: %w", pid, err)
	}
	got, state, err := parseStat(data)
	if err != nil {
		return false, fmt.Errorf("check process %d: %w", pid, err)
	}
	if state == 'Z' || state == 'X' { // exited, not yet reaped
		return false, nil
	}
	return start == "" || got == start, nil
}
