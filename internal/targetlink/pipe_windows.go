//go:build windows

package targetlink

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

const pipeHint = `is it the VM's serial port pipe (\\.\pipe\Name, VM serving as the pipe server)?`

// dialPipe connects as a client to the named pipe that a VM serves as its
// serial port.
func dialPipe(ctx context.Context, path string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, path)
}

// isRefused reports whether err means that nothing accepts connections.
func isRefused(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, syscall.ECONNREFUSED)
}
