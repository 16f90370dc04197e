package kdsrvcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"kdsrv/internal/cli/clikit"
	"kdsrv/internal/server"
)

// observeFlags are kdsrv's -metrics, -trace and -trace-format.
type observeFlags struct {
	metrics string
	trace   clikit.TraceFlags
}

func (o *observeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464)")
	o.trace.Register(fs)
}

// checkMetricsAddr validates -metrics before anything starts.
func checkMetricsAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-metrics %q: give HOST:PORT, e.g. -metrics 127.0.0.1:9464 (%v)", addr, err)
	}
	if port == "" {
		return fmt.Errorf("-metrics %q: no port; e.g. -metrics 127.0.0.1:9464", addr)
	}
	return nil
}

// isLoopback reports whether a listener address is only reachable from
// this machine.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// startMetrics serves s's metrics on addr until stop is called.
func startMetrics(addr string, s *server.Server, stdout io.Writer, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.MetricsHandler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics server stopped", "addr", ln.Addr().String(), "err", err.Error())
		}
	}()
	url := "http://" + ln.Addr().String() + "/metrics"
	if !isLoopback(ln.Addr()) {
		logger.Warn("metrics are served beyond this machine: anyone who can reach the address can read them (target names, client counts); bind -metrics to 127.0.0.1 unless a firewall protects it", "addr", ln.Addr().String())
	}
	logger.Info("serving metrics", "url", url)
	fmt.Fprintf(stdout, "kdsrv: metrics on %s\n", url)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}
