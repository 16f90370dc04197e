// Command kdclient is the smart client of a KD connection server: it runs
// commands against a remote kernel debug target, bridges it to a local
// debugger, or lists servers (-QR). See kdclient -h.
package main

import (
	"context"
	"os"

	"kdsrv/internal/cli/kdclientcli"
)

func main() {
	ctx, stop := kdclientcli.SignalContext(context.Background())
	code := kdclientcli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
