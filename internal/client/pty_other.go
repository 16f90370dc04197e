//go:build !unix

package client

import (
	"context"
	"errors"
)

// OpenBridgePTY is not available on this system.
func OpenBridgePTY() (string, func(context.Context, *Bridge) error, error) {
	return "", nil, errors.New("-listen pty is not available on this system; use -listen tcp:127.0.0.1:PORT (WinDbg: -k com:ipport=PORT,port=127.0.0.1)")
}
