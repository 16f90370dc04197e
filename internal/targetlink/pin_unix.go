//go:build !windows

package targetlink

import (
	"context"
	"net"

	"kdsrv/internal/serial"
)

// dialPinned connects to the unix socket at real, the path the allow-list
// admitted, making sure it is the object that was checked (openVerified).
func dialPinned(ctx context.Context, real string) (net.Conn, error) {
	var d net.Dialer
	return openVerified(real, func(path string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) })
}

// openSerialPinned opens the serial device at real, making sure it is the
// object that was checked (openVerified).
func openSerialPinned(real string, baud int) (*serial.Port, error) {
	return openVerified(real, func(path string) (*serial.Port, error) { return serial.Open(path, baud) })
}
