//go:build linux && (ppc64 || ppc64le)

package serial

import "golang.org/x/sys/unix"

// On powerpc the plain termios already carries the numeric speeds and there
// is no termios2.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)
