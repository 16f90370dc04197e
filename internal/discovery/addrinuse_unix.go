//go:build unix

package discovery

import (
	"errors"
	"syscall"
)

// isAddrInUse reports whether a listen error means the port is held by
// another socket.
func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
