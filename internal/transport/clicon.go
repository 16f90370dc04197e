package transport

import (
	"context"
	"fmt"
	"net"

	"kdsrv/internal/spec"
)

// listenClicon serves a reverse (clicon) transport: the server dials the
// client. Not implemented yet.
func listenClicon(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	return nil, fmt.Errorf("%s: reverse connections (clicon): %w", t, ErrUnsupported)
}

// dialClicon is the client side of a reverse connection: it listens and
// waits for the server to dial in. Not implemented yet.
func dialClicon(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	return nil, fmt.Errorf("%s: reverse connections (clicon): %w", t, ErrUnsupported)
}
