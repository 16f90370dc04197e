//go:build !unix

package client

import (
	"context"
	"errors"
)

func openBridgePTY() (string, func(context.Context, *Bridge) error, error) {
	return "", nil, errors.New("-listen pty is not available on this system; use -listen tcp:127.0.0.1:PORT (WinDbg: -k com:ipport=PORT,port=127.0.0.1)")
}
