//go:build !unix && !windows

package transport

import (
	"context"
	"fmt"
	"net"
)

// PipeDir is empty where this build has no pipes.
func PipeDir() string { return "" }

func listenPipe(name string) (net.Listener, error) {
	return nil, fmt.Errorf("pipe %s: %w", name, ErrUnsupported)
}

func dialPipe(ctx context.Context, host, name string) (net.Conn, error) {
	return nil, fmt.Errorf("pipe %s: %w", name, ErrUnsupported)
}
