//go:build darwin || freebsd

package peercred

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func read(fd uintptr) string {
	cred, err := unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil || cred == nil {
		return ""
	}
	return fmt.Sprintf("uid %d", cred.Uid)
}
