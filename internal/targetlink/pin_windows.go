//go:build windows

package targetlink

import (
	"context"
	"net"

	"kdsrv/internal/serial"
)

// dialPinned connects to the named pipe at real. Windows device and pipe
// names have no symbolic links that kdsrv follows, so the name checked is
// the object opened.
func dialPinned(ctx context.Context, real string) (net.Conn, error) { return dialPipe(ctx, real) }

// openSerialPinned opens the COM device at real (see dialPinned).
func openSerialPinned(real string, baud int) (*serial.Port, error) { return serial.Open(real, baud) }
