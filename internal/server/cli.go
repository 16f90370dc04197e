package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
	"kdsrv/internal/transport"
)

// Usage is the top of kdsrv's --help text; spec.ServerHelp follows it.
const Usage = `kdsrv — KD connection server

Usage:
  kdsrv -t TRANSPORT [-t TRANSPORT ...] [options]
  kdsrv -dry-run -t TRANSPORT ...
  kdsrv cert create NAME | kdsrv cert list   certificates for ssl/spipe (kdsrv cert -h)

kdsrv runs on the machine that owns a kernel debug link (serial cable, a
VM's serial pipe, KDCOM over TCP) and lets remote smart clients (kdclient,
or WinDbg's -k kdsrv:...) use it. Each -t adds a transport clients connect
over; one process may serve several.

When a listener is ready kdsrv prints one line per transport on standard
output, for example:
  kdsrv: listening on tcp:port=53:60
(the port actually used, then the end of the range, as -QR shows it), or
for a reverse connection "kdsrv: connecting to the client of tcp:clicon=...".
SIGINT or SIGTERM stops the server cleanly: sessions end, targets are
released, and kdsrv exits 0.

Options:
  -t TRANSPORT     a transport (see the forms below); repeatable
  -allow PATTERN   allow clients to open this target link; repeatable.
                   Without -allow only local serial devices may be opened
                   (/dev/ttyS*, /dev/ttyUSB*, /dev/ttyACM*, COMn). Patterns:
                     /path/glob         serial devices or VM pipe sockets,
                                        e.g. -allow '/run/vm/*.sock'
                     HOST:PORT, HOST:*  com:ipport targets, e.g. 127.0.0.1:*
                     net:PORT, net:*    KDNET UDP ports
  -bind ADDR       listen for tcp/ssl clients on this address only
                   (default: every interface, like the original)
  -allow-endpsrv   let clients stop the server (kdclient ... endpsrv)
  -clicon-retry    reverse connections (clicon=): keep dialing the client
                   after a refused or broken connection instead of exiting
  -qr-port N       answer kdclient -QR queries on UDP port N (default
                   50100, 0 = never answer). Only servers running as root
                   (elevated on Windows) are listed, and never hidden or
                   clicon transports
  -no-mdns         do not announce this server on the local network by
                   multicast DNS (kdclient -QR -browse)
  -dry-run         parse and validate every -t, print each normalised, exit
  -v               log client and target events on standard error

Target links opened for clients take omitted settings from this machine's
environment: _NT_DEBUG_PORT and _NT_DEBUG_BAUD_RATE (see the trans= forms
in kdclient -h).

Passwords on tcp, npipe and com are never sent over the network (a mutual
challenge-response proves them), but those transports are not encrypted:
anyone on the path can read the debugging session. Use ssl or spipe for a
private session.

`

// feature is an optional part of kdsrv (discovery, firewall opening, ...)
// that adds its own flags and start-up step without editing Main. Feature
// files register themselves from init functions.
type feature struct {
	name string
	// flags registers the feature's flags.
	flags func(fs *flag.FlagSet)
	// start runs after every listener is open and before clients are
	// served. The returned stop runs at exit, in reverse order. An error
	// stops kdsrv.
	start func(ctx context.Context, r *Run) (stop func(), err error)
}

var features []feature

// registerFeature adds a feature; call it from init.
func registerFeature(f feature) { features = append(features, f) }

// Run is what a feature's start step sees of the running server.
type Run struct {
	Server     *Server
	Transports []*spec.Transport
	Stdout     io.Writer
	Stderr     io.Writer
	Logger     *log.Logger
	// Flags is the parsed command line, for features to read their flags.
	Flags *flag.FlagSet
}

// subcommands are "kdsrv NAME ..." forms handled apart from the server
// (for example "kdsrv cert create"); files register them from init.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Main runs kdsrv with args (without the program name) until ctx ends or
// the server stops. It returns the exit code: 0 success, 1 failure, 2 bad
// usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if sub := subcommands[args[0]]; sub != nil {
			return sub(ctx, args[1:], stdout, stderr)
		}
	}
	var ts, allows multiFlag
	var bind string
	var dryRun, allowEndpsrv, verbose bool
	var listenOpts transport.Options
	fs := flag.NewFlagSet("kdsrv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, Usage+spec.ServerHelp) }
	fs.Var(&ts, "t", "transport (repeatable)")
	fs.Var(&allows, "allow", "allow a target link pattern (repeatable)")
	fs.StringVar(&bind, "bind", "", "listen on this address only")
	fs.BoolVar(&dryRun, "dry-run", false, "parse and print every -t, then exit")
	fs.BoolVar(&allowEndpsrv, "allow-endpsrv", false, "let clients stop the server")
	fs.BoolVar(&verbose, "v", false, "verbose logging")
	fs.BoolVar(&listenOpts.CliconRetry, "clicon-retry", false, "reverse connections: keep retrying instead of exiting")
	for _, f := range features {
		if f.flags != nil {
			f.flags(fs)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdsrv: "+format+"\n(kdsrv -h shows the usage)\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if len(ts) == 0 {
		return usage("no transport: give at least one -t, e.g. -t tcp:port=5005")
	}
	var parsed []*spec.Transport
	for _, s := range ts {
		t, err := spec.ParseServerTransport(s)
		if err != nil {
			return usage("-t: %v", err)
		}
		parsed = append(parsed, t)
	}
	allow, err := targetlink.NewAllowList(allows, true)
	if err != nil {
		return usage("-allow: %v", err)
	}
	for _, t := range parsed {
		for _, w := range t.Warnings() {
			fmt.Fprintf(stderr, "kdsrv: warning: %s: %s\n", t, w)
		}
	}
	if dryRun {
		for _, t := range parsed {
			fmt.Fprintln(stdout, t.String())
		}
		return 0
	}
	logger := log.New(io.Discard, "", 0)
	if verbose {
		logger = log.New(stderr, "kdsrv: ", log.LstdFlags)
	}
	s, err := New(Config{
		Transports:    parsed,
		Allow:         allow,
		Listen:        transportOptions(bind, listenOpts),
		AllowShutdown: allowEndpsrv,
		Logger:        logger,
		Ready: func(d string) {
			if strings.Contains(d, "clicon=") {
				fmt.Fprintf(stdout, "kdsrv: connecting to the client of %s\n", d)
				return
			}
			fmt.Fprintf(stdout, "kdsrv: listening on %s\n", d)
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "kdsrv: %v\n", err)
		return 1
	}
	if err := s.Listen(ctx); err != nil {
		fmt.Fprintf(stderr, "kdsrv: %v\n", err)
		return 1
	}
	run := &Run{Server: s, Transports: parsed, Stdout: stdout, Stderr: stderr, Logger: logger, Flags: fs}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, f := range features {
		if f.start == nil {
			continue
		}
		stop, err := f.start(ctx, run)
		if err != nil {
			fmt.Fprintf(stderr, "kdsrv: %s: %v\n", f.name, err)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.Shutdown(sctx)
			cancel()
			return 1
		}
		if stop != nil {
			stops = append(stops, stop)
		}
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
		fmt.Fprintf(stderr, "kdsrv: %v\n", err)
		return 1
	}
	if result == nil {
		result = <-serveErr
	}
	if result != nil && !errors.Is(result, ErrServerClosed) {
		fmt.Fprintf(stderr, "kdsrv: %v\n", result)
		return 1
	}
	return 0
}

func transportOptions(bind string, o transport.Options) transport.Options {
	o.BindHost = bind
	o.PID = os.Getpid()
	o.TID = os.Getpid() // the main thread's id equals the process id on Linux
	return o
}
