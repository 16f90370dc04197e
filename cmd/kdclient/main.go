// Command kdclient is the smart client of a KD connection server: it runs
// commands against a remote kernel debug target, bridges it to a local
// debugger, or lists servers (-QR). See kdclient -h.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kdsrv/internal/cli/kdclientcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := kdclientcli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
