package kdclientcli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"kdsrv/internal/client"
	"kdsrv/internal/dbgport"
	"kdsrv/internal/transport"
)

// runBridge serves local debuggers on endpoint ep until ctx ends or the
// server connection ends.
func runBridge(ctx context.Context, b *client.Bridge, ep string, stdout io.Writer, logger *slog.Logger, runDone <-chan struct{}, runErr func() error) error {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	kind, addr, _ := strings.Cut(ep, ":")
	switch kind {
	case "unix", "tcp":
		ln, err := listenEndpoint(kind, addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Fprintf(stdout, "kdclient: bridge ready on %s:%s (%s)\n", kind, ln.Addr(), attachHint(kind, ln.Addr()))
		go func() { done <- b.Listen(bctx, ln, logger) }()
	case "npipe":
		// A named pipe on Windows (WinDbg: -k com:pipe,port=\\.\pipe\NAME),
		// a unix socket in the pipe directory elsewhere.
		ln, err := transport.ListenPipe(addr)
		if err != nil {
			return fmt.Errorf("-listen npipe:%s: %w", addr, err)
		}
		defer ln.Close()
		fmt.Fprintf(stdout, "kdclient: bridge ready on npipe:%s (%s)\n", addr, ln.Addr())
		go func() { done <- b.Listen(bctx, ln, logger) }()
	case "pty":
		// The debugger port policy of package dbgport, as for kdtarget's
		// pty: a debugger that closes the slave is followed by the next
		// one that opens it.
		ln, err := dbgport.ListenPTY(0)
		if err != nil {
			return fmt.Errorf("-listen pty: %w", err)
		}
		defer ln.Close()
		fmt.Fprintf(stdout, "kdclient: bridge ready on pty %s (attach a debugger to that serial device)\n", ln.Path())
		go func() { done <- b.Listen(bctx, ln, logger) }()
	default:
		return fmt.Errorf("bad -listen %q: use unix:PATH, tcp:HOST:PORT, npipe:NAME or pty", ep)
	}
	select {
	case err := <-done:
		cancel()
		return err
	case <-runDone:
		cancel()
		<-done
		if ctx.Err() != nil {
			return nil
		}
		return runErr()
	}
}

func attachHint(kind string, a net.Addr) string {
	if kind == "unix" {
		return "radare2: r2 -d winkd://" + a.String()
	}
	host, port, _ := net.SplitHostPort(a.String())
	return fmt.Sprintf("WinDbg/kd: -k com:ipport=%s,port=%s", port, host)
}

// listenEndpoint opens a bridge listener with the debugger-port policy
// (package dbgport): a stale unix socket left by a bridge that died is
// replaced, a live one or any other existing file is not touched.
func listenEndpoint(kind, addr string) (net.Listener, error) {
	ln, err := dbgport.Listen(context.Background(), kind, addr)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	return ln, nil
}
