// Command kdsrv is the KD connection server: it lets remote smart clients
// use the kernel debug links attached to this machine. See kdsrv -h.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kdsrv/internal/cli/kdsrvcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := kdsrvcli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
