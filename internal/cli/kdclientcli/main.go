// Package kdclientcli is the command line of kdclient: flags, the built-in
// commands, the bridge's local endpoints and -QR. cmd/kdclient calls Main;
// tests call it in-process.
package kdclientcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"kdsrv/internal/cli/clikit"
	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/logx"
	"kdsrv/internal/secret"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
	"kdsrv/internal/version"
	"kdsrv/internal/wire"
)

// Main runs kdclient with args (without the program name) and returns the
// process exit code: 0 success, 1 failure, 2 bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "completion" {
		return completionMain(args[1:], stdout, stderr)
	}
	var o cliOptions
	// With -json or -log-format json, every error is a JSON object too,
	// even one about the flags.
	jsonOut := logx.WantsJSON(args) || slices.Contains(args, "-json") || slices.Contains(args, "--json")
	var fs *flag.FlagSet
	pos, code, ok := clikit.ParseFlags("kdclient", args, jsonOut, true, stderr, func(errOut io.Writer) *flag.FlagSet {
		fs = newFlagSet(&o, errOut)
		return fs
	})
	if !ok {
		return code
	}
	jsonOut = o.json || o.log.JSON()
	report := clikit.Reporter{Stderr: stderr, JSON: jsonOut, Program: "kdclient"}
	errf, usage := report.Fail, report.Usage
	if o.version {
		version.Print(stdout, "kdclient", jsonOut)
		return 0
	}
	logOpts, err := o.log.Options()
	if err != nil {
		return usage("%v", err)
	}
	if o.json {
		logOpts.Format = logx.FormatJSON // -json: everything on stderr is JSON too
	}
	logger := logx.New(stderr, logOpts)
	// notice tells the user something on stderr: "kdclient: TEXT" for
	// people, a log line when the output is JSON.
	notice := func(level slog.Level, text string) {
		if jsonOut {
			logger.Log(context.Background(), level, text)
			return
		}
		if level >= slog.LevelWarn {
			text = "warning: " + text
		}
		fmt.Fprintf(stderr, "kdclient: %s\n", text)
	}
	if o.qr {
		fs.Visit(func(f *flag.Flag) { o.timeoutSet = o.timeoutSet || f.Name == "timeout" })
		return runQR(ctx, o, pos, stdout, stderr, jsonOut)
	}
	if o.k == "" {
		return usage("missing -k 'kdsrv:server=@{...},trans=@{...}'")
	}
	c, err := spec.ParseConnect(o.k)
	if err != nil {
		return usage("-k: %v", err)
	}
	for _, w := range c.Server.Warnings() {
		notice(slog.LevelWarn, w)
	}
	var secretNotices io.Writer = stderr
	if jsonOut {
		secretNotices = noticeWriter(notice)
	}
	sec, err := resolveSecrets(c, o, os.Getenv, secretNotices)
	if err != nil {
		return usage("%v", err)
	}
	if o.dryRun {
		fmt.Fprintln(stdout, c.String())
		return 0
	}
	if o.listen == "" && len(pos) == 0 {
		return usage("nothing to do: give a command (version, regs, read, ...) or -listen ENDPOINT")
	}
	if o.listen != "" && len(pos) > 0 {
		return usage("-listen runs a bridge; it does not take a command (%q)", pos[0])
	}
	copts := client.Options{TakeOver: o.takeover, Logger: logger, HandshakeTimeout: o.timeout,
		OnNotice: func(n wire.Notice) { notice(slog.LevelInfo, "kdsrv: "+n.Text) }}
	if _, err := o.trace.CheckFormat(); err != nil {
		return usage("%v", err)
	}
	tracer, closeTrace, err := o.trace.Open(stderr)
	if err != nil {
		return errf("%v", err)
	}
	defer closeTrace()
	copts.Trace = tracer
	if len(pos) > 0 && pos[0] == "console" {
		if len(pos) > 1 {
			return usage("usage: console (it takes no arguments; Ctrl-C ends it)")
		}
		return runConsole(ctx, c, sec, copts, o, stdout, stderr, errf)
	}

	// Commands that need no target.
	if len(pos) > 0 && pos[0] == "endpsrv" {
		return runEndpsrv(ctx, c, sec, copts, o, stdout, stderr, errf)
	}
	var cmd func(ctx context.Context, cm *client.Commander, b *client.Bridge) error
	if o.listen == "" {
		cmd, err = parseCommand(o, pos)
		if err != nil {
			return usage("%v", err)
		}
	}

	conn, err := dial(ctx, c, o, copts, sec, stderr, secret.Prompt)
	if err != nil {
		errf("%v", err)
		if ctx.Err() != nil {
			return InterruptedExitCode(ctx) // Ctrl-C while connecting or at the password prompt
		}
		return 1
	}
	// The session outlives ctx (Ctrl-C) long enough to detach cleanly
	// (Session.Close), so that the server has released the target when
	// kdclient exits and the next client can open it at once.
	octx, cancel := context.WithTimeout(ctx, o.timeout+5*time.Second)
	sess, err := conn.Start(octx, c.Trans, client.SessionOptions{
		ReadAhead: o.readahead,
		Cache:     o.cache,
		OnState:   func(st wire.State) { notice(slog.LevelInfo, fmt.Sprintf("target %s: %s", st.State, st.Text)) },
	})
	cancel()
	if err != nil {
		return errf("%v", err)
	}
	defer sess.Close()
	// A bridge runs for long and says what it serves; a command says
	// it only when asked (-v).
	openedLevel := slog.LevelDebug
	if o.listen != "" {
		openedLevel = slog.LevelInfo
	}
	logger.Log(ctx, openedLevel, "session opened", "server", c.Server.String(), "target", c.Trans.String(), "session", sess.Opened.Session, "info", sess.Opened.Info)
	b := sess.Bridge
	// sessionErr says why the session ended under us.
	sessionErr := func() error {
		if err := sess.Err(); err != nil {
			return err
		}
		return conn.Closed()
	}

	if o.listen != "" {
		err := runBridge(ctx, b, o.listen, stdout, logger, sess.Done(), sessionErr)
		sess.Close()
		if err != nil {
			return errf("%v", err)
		}
		return 0
	}

	cm := &client.Commander{Out: stdout, JSON: o.json, AttachTimeout: o.timeout}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) && !o.json {
		cm.Progress = stderr
	}
	// The bridge traces the debugger-bridge hop (-trace); the in-process
	// debugger's own end adds nothing.
	h, stopHost := sess.Host(kd.HostOptions{OnPrint: cm.PrintSink()})
	cm.Host = h
	cctx, cancelCmd := context.WithCancelCause(ctx)
	cmdErr := make(chan error, 1)
	go func() { cmdErr <- cmd(cctx, cm, b) }()
	select {
	case err = <-cmdErr:
	case <-sess.Done():
		err = sessionErr()
		cancelCmd(&connectionLost{err: err})
		// A dump says itself how far it got before the connection went.
		var ds *dumpStopped
		if cerr := <-cmdErr; errors.As(cerr, &ds) {
			err = cerr
		}
	}
	cancelCmd(nil)
	stopHost()
	sess.Close()
	if err != nil {
		var ds *dumpStopped
		if errors.As(err, &ds) {
			errf("%v", err)
			if ds.interrupted {
				return InterruptedExitCode(ctx)
			}
			return 1
		}
		if ctx.Err() != nil {
			return 0 // interrupted (dbgprint ends this way)
		}
		return errf("%v", err)
	}
	return 0
}

// connectionLost is the cause with which a command's context ends when the
// connection to kdsrv ended under it.
type connectionLost struct{ err error }

func (e *connectionLost) Error() string { return fmt.Sprint(e.err) }

// Interrupted is the cause with which SignalContext ends its context.
type Interrupted struct{ Signal os.Signal }

func (e *Interrupted) Error() string { return fmt.Sprintf("interrupted by %v", e.Signal) }

// SignalContext returns a context that ends, with an *Interrupted cause,
// when the process receives SIGINT or SIGTERM. stop releases the signals.
func SignalContext(parent context.Context) (ctx context.Context, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(parent)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-c:
			cancel(&Interrupted{Signal: s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(c)
		close(done)
		cancel(context.Canceled)
	}
}

// InterruptedExitCode is the exit code of a command stopped by ctx ending:
// 128 + the signal number, as a shell reports it (130 for SIGINT, 143 for
// SIGTERM); 130 when the cause is not a signal.
func InterruptedExitCode(ctx context.Context) int {
	var in *Interrupted
	if errors.As(context.Cause(ctx), &in) {
		if s, ok := in.Signal.(syscall.Signal); ok {
			return 128 + int(s)
		}
	}
	return 130
}

// dialContext bounds connecting to the server by -timeout, or, for a
// reverse connection (the server dials us), by -wait (default: until
// interrupted), and prints the waiting dialer's notices on stderr.
func dialContext(ctx context.Context, t *spec.Transport, o cliOptions, stderr io.Writer) (context.Context, context.CancelFunc) {
	if !t.Reverse() {
		return context.WithTimeout(ctx, o.timeout)
	}
	ctx = transport.WithEvents(ctx, func(e transport.Event) { fmt.Fprintf(stderr, "kdclient: %s\n", e.Text) })
	if o.wait > 0 {
		return context.WithTimeout(ctx, o.wait)
	}
	return context.WithCancel(ctx)
}

// noticeWriter turns the "kdclient: [warning: ]TEXT" lines that helpers
// write into notices, so that with JSON output they are JSON too.
type noticeWriter func(level slog.Level, text string)

func (n noticeWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l = strings.TrimPrefix(l, "kdclient: ")
		level := slog.LevelInfo
		if t, ok := strings.CutPrefix(l, "warning: "); ok {
			l, level = t, slog.LevelWarn
		}
		n(level, l)
	}
	return len(p), nil
}
