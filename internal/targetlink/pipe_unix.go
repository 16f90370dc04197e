//go:build !windows

package targetlink

import (
	"context"
	"errors"
	"net"
	"syscall"
)

const pipeHint = "is it the VM's serial socket (QEMU: -serial unix:PATH,server,nowait)?"

// dialPipe connects to the unix stream socket that a VM serves as its serial
// port.
func dialPipe(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// isRefused reports whether err means that nothing accepts connections.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
