//go:build windows

package sim

import "context"

// maxUnixPath is the longest AF_UNIX socket path Windows accepts.
const maxUnixPath = 107

// ServePTY is not available on Windows: it returns ErrPTYUnsupported.
func ServePTY(ctx context.Context, m *Machine, opts PortOptions) error {
	return ErrPTYUnsupported
}
