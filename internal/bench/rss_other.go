//go:build !linux

package bench

import "errors"

// procStatus is only implemented on Linux (/proc); elsewhere the scale test
// reports the in-process Go heap instead.
func procStatus(pid int) (peakKiB int64, threads int, err error) {
	return 0, 0, errors.New("reading another process's memory use needs /proc (Linux)")
}
