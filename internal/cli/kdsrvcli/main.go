// Package kdsrvcli is the command line of kdsrv: flags, the "kdsrv cert"
// subcommand, and the explicit start of kdsrv's optional parts (discovery,
// IcfEnable) around a server.Server. cmd/kdsrv calls Main; tests and
// kdbench call it in-process.
package kdsrvcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"kdsrv/internal/cli/clikit"
	"kdsrv/internal/discovery"
	"kdsrv/internal/firewall"
	"kdsrv/internal/logx"
	"kdsrv/internal/secret"
	"kdsrv/internal/server"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/transport"
	"kdsrv/internal/version"
)

// env holds what kdsrv takes from the machine that tests replace.
type env struct {
	// elevated reports whether this process may be listed by -QR (CI
	// runs as root, so tests decide).
	elevated func() bool
	// openFirewall and openPipesFirewall open the firewall (IcfEnable).
	openFirewall      func(ctx context.Context, r firewall.Request) (firewall.Result, error)
	openPipesFirewall func(ctx context.Context) (firewall.Result, error)
}

func defaultEnv() env {
	return env{
		elevated:          discovery.Elevated,
		openFirewall:      firewall.Open,
		openPipesFirewall: firewall.OpenPipes,
	}
}

// Main runs kdsrv with args (without the program name) until ctx ends or
// the server stops. It returns the exit code: 0 success, 1 failure, 2 bad
// usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, defaultEnv())
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, e env) int {
	if len(args) > 0 {
		switch args[0] {
		case "cert":
			return certMain(ctx, args[1:], stdout, stderr)
		case "completion":
			return completionMain(args[1:], stdout, stderr)
		}
	}
	var o options
	jsonOut := logx.WantsJSON(args)
	rest, code, ok := clikit.ParseFlags("kdsrv", args, jsonOut, false, stderr, func(errOut io.Writer) *flag.FlagSet { return newFlagSet(&o, errOut) })
	if !ok {
		return code
	}
	report := clikit.Reporter{Stderr: stderr, JSON: jsonOut, Program: "kdsrv"}
	usage := report.Usage
	if o.version {
		version.Print(stdout, "kdsrv", jsonOut)
		return 0
	}
	logger, err := o.log.New(stderr)
	if err != nil {
		return usage("%v", err)
	}
	// fatal reports what stopped kdsrv: "kdsrv: ERROR" for people, a
	// JSON object with -log-format json.
	fatal := func(err error) int { return report.Fail("%v", err) }
	if len(rest) > 0 {
		return usage("unexpected argument %q", rest[0])
	}
	if len(o.transports) == 0 {
		return usage("no transport: give at least one -t, e.g. -t tcp:port=5005")
	}
	var parsed []*spec.Transport
	for _, s := range o.transports {
		t, err := spec.ParseServerTransport(s)
		if err != nil {
			return usage("-t: %v", err)
		}
		parsed = append(parsed, t)
	}
	if err := applyPasswordFile(parsed, o.passwordFile, logger); err != nil {
		return usage("%v", err)
	}
	if o.limits.BackoffMax <= 0 {
		return usage("-auth-backoff-max %v: give a positive duration such as 60s", o.limits.BackoffMax)
	}
	if o.limits.FreeFailures == 0 || o.limits.FailuresPerSecond == 0 || o.limits.MaxPreAuthPerSource == 0 {
		return usage("-auth-free-failures, -auth-failures-per-second and -max-preauth-per-source take a positive number, or a negative one to switch the limit off")
	}
	allow, err := targetlink.NewAllowList(o.allows, true)
	if err != nil {
		return usage("-allow: %v", err)
	}
	for _, t := range parsed {
		for _, w := range t.Warnings() {
			logger.Warn(w, "transport", t.String())
		}
	}
	if o.observe.metrics != "" {
		if err := checkMetricsAddr(o.observe.metrics); err != nil {
			return usage("%v", err)
		}
	}
	tracer, closeTrace, err := o.observe.trace.Open(stderr)
	if err != nil {
		return usage("%v", err)
	}
	defer func() {
		if err := closeTrace(); err != nil {
			logger.Warn("closing the trace", "err", err.Error())
		}
	}()
	if o.dryRun {
		for _, t := range parsed {
			fmt.Fprintln(stdout, t.String())
		}
		return 0
	}
	s, err := server.New(server.Config{
		Transports:    parsed,
		Allow:         allow,
		Listen:        transportOptions(o.bind, transport.Options{CliconRetry: o.cliconRetry}),
		AllowShutdown: o.allowEndpsrv,
		Logger:        logger,
		Limits:        o.limits,
		TakeoverAny:   o.takeoverAny,
		Metrics:       o.observe.metrics != "",
		Trace:         tracer,
		Ready: func(d string) {
			if strings.Contains(d, "clicon=") {
				logger.Info("connecting to the client", "transport", d)
				fmt.Fprintf(stdout, "kdsrv: connecting to the client of %s\n", d)
				return
			}
			logger.Info("listening", "transport", d)
			fmt.Fprintf(stdout, "kdsrv: listening on %s\n", d)
		},
	})
	if err != nil {
		return fatal(err)
	}
	if err := s.Listen(ctx); err != nil {
		return fatal(err)
	}

	// The optional parts start once every listener is open and before
	// clients are served; they stop at exit, in reverse order. An error
	// stops kdsrv.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	fail := func(part string, err error) int {
		logx.Fatal(stderr, jsonOut, "kdsrv", part+": "+err.Error(), "")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(sctx)
		cancel()
		return 1
	}
	stop, err := startDiscovery(discoveryConfig{
		qrPort:   o.qrPort,
		registry: o.registry,
		noMDNS:   o.noMDNS,
		bindHost: o.bind,
		elevated: e.elevated(),
	}, s, parsed, logger)
	if err != nil {
		return fail("discovery", err)
	}
	if stop != nil {
		stops = append(stops, stop)
	}
	startFirewall(ctx, e, s, parsed, logger)
	if o.observe.metrics != "" {
		stop, err := startMetrics(o.observe.metrics, s, stdout, logger)
		if err != nil {
			return fail("metrics", err)
		}
		stops = append(stops, stop)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve() }()
	var result error
	select {
	case <-ctx.Done():
	case <-s.ShutdownRequested():
	case result = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fatal(err)
	}
	if result == nil {
		result = <-serveErr
	}
	if result != nil && !errors.Is(result, server.ErrServerClosed) {
		return fatal(result)
	}
	return 0
}

func transportOptions(bind string, o transport.Options) transport.Options {
	o.BindHost = bind
	o.PID = os.Getpid()
	o.TID = os.Getpid() // the main thread's id equals the process id on Linux
	return o
}

// applyPasswordFile gives every transport without password= the password
// of -password-file, and warns once when a password is on the command line.
func applyPasswordFile(ts []*spec.Transport, file string, logger *slog.Logger) error {
	onCommandLine := 0
	for _, t := range ts {
		if t.Password != "" {
			onCommandLine++
		}
	}
	if onCommandLine > 0 {
		logger.Warn(strings.TrimPrefix(secret.CommandLineWarning("password in -t", "-"+flagPasswordFile+" FILE (mode 600)"), "warning: "))
	}
	if file == "" {
		return nil
	}
	pw, err := secret.ReadFile("password file", file)
	if err != nil {
		return err
	}
	if err := spec.CheckPassword(pw); err != nil {
		return fmt.Errorf("password file %s: %w", file, err)
	}
	if onCommandLine == len(ts) {
		return fmt.Errorf("-%s %s is used by no transport: every -t gives its own password=", flagPasswordFile, file)
	}
	for _, t := range ts {
		if t.Password == "" {
			t.Password = pw
		}
	}
	return nil
}
