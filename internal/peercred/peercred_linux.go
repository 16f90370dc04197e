package peercred

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func read(fd uintptr) string {
	cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || cred == nil {
		return ""
	}
	return fmt.Sprintf("uid %d pid %d", cred.Uid, cred.Pid)
}
