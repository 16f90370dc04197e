//go:build linux

package targetlink

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinPath opens the object at real, an absolute clean path that the
// allow-list has admitted, one element at a time from the root without
// following any symbolic link, and returns an O_PATH descriptor of it. The
// descriptor is the very object that was checked: if a symbolic link has
// appeared anywhere on the path since it was resolved, the walk stops with
// errPathChanged instead of following it.
func pinPath(real string) (int, error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	elems := strings.Split(strings.Trim(real, "/"), "/")
	for i, e := range elems {
		if e == "" {
			continue
		}
		flags := unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i < len(elems)-1 {
			flags |= unix.O_DIRECTORY
		}
		nfd, err := unix.Openat(fd, e, flags, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return -1, errPathChanged
			}
			return -1, err
		}
		fd = nfd
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Close(fd)
		return -1, errPathChanged
	}
	return fd, nil
}

// procFD reports whether /proc/self/fd works here, so that a pinned
// descriptor can be connected to or reopened by its magic link. It is
// asked at every open (a stat; targets are opened rarely), so that no
// package state remembers it.
func procFD() bool {
	fi, err := os.Stat("/proc/self/fd")
	return err == nil && fi.IsDir()
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openVerified opens real, the path the allow-list admitted, with open. The
// object is pinned first (pinPath) and opened through the descriptor's
// /proc/self/fd link, so nothing swapped in between the check and the
// open can be reached. Without /proc it is opened by name, and then the
// name must still lead to the pinned object.
func openVerified[T io.Closer](real string, open func(path string) (T, error)) (T, error) {
	var none T
	fd, err := pinPath(real)
	if err != nil {
		return none, err
	}
	defer unix.Close(fd)
	if procFD() {
		return open(fdPath(fd))
	}
	c, err := open(real)
	if err != nil {
		return none, err
	}
	if err := samePinned(fd, real); err != nil {
		_ = c.Close()
		return none, err
	}
	return c, nil
}

// samePinned checks that real, walked again without following links, is
// still the object fd holds.
func samePinned(fd int, real string) error {
	again, err := pinPath(real)
	if err != nil {
		return errPathChanged
	}
	defer unix.Close(again)
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Fstat(again, &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		return errPathChanged
	}
	return nil
}
