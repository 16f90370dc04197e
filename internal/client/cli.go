package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"kdsrv/internal/discovery"
	"kdsrv/internal/kd"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
	"kdsrv/internal/wire"
)

// Usage is kdclient's --help text.
const Usage = `kdclient — smart client for a KD connection server (kdsrv)

Usage:
  kdclient -k 'kdsrv:server=@{<transport>},trans=@{<target>}' [options] COMMAND [ARGS]
  kdclient -k 'kdsrv:server=@{<transport>},trans=@{<target>}' -listen ENDPOINT [options]
  kdclient -QR [\\Host[:PORT]] [-json] [-qr-port N] [-timeout D]
  kdclient -QR -browse [-json]
  kdclient -dry-run -k '...'

The first form runs one built-in command against the remote target; the
second bridges the remote target to a local debugger; -QR lists the KD
connection servers running on a host.

Commands:
  version              target version: build, machine, kernel base
  regs [-cpu N]        registers of a processor (default 0)
  read ADDR LEN        hex dump of LEN bytes of virtual memory at ADDR
  write ADDR HEX       write bytes (hex string, e.g. 90cc) at ADDR
  break                stop the target (break-in) and show where it stopped
  go                   resume the target
  dbgprint             stream the target's DbgPrint output until Ctrl-C
  dump ADDR LEN FILE   copy LEN bytes at ADDR to FILE (progress on a terminal)
  endpsrv              ask the server to shut down (only if kdsrv was started
                       with -allow-endpsrv)
  ADDR is hexadecimal (0x prefix and WinDbg's backtick separator allowed); LEN is decimal
  or 0x-hex. Commands stop a running target to read it and leave it stopped;
  'go' resumes it.

Bridge endpoints (-listen), each a local KDCOM endpoint an unmodified
debugger attaches to as if it were a VM's serial pipe:
  unix:PATH            AF_UNIX stream socket: radare2 -d winkd:///PATH
  tcp:HOST:PORT        TCP: kd/WinDbg -k com:ipport=PORT,port=HOST
  npipe:NAME           a named pipe: kd/WinDbg -k com:pipe,port=\\.\pipe\NAME
                       (Windows; elsewhere a unix socket in the pipe directory)
  pty                  a pseudo-terminal; its path is printed (Linux, macOS)
  Debuggers may detach and re-attach; each new one gets the target's state.

Options:
  -k SPEC        the server and target, as for WinDbg's -k kdsrv:...
  -listen EP     run as a bridge on endpoint EP (see above)
  -takeover      open the target even if another client has it
  -readahead     let kdsrv read ahead of sequential virtual-memory reads
                 (dumps) and answer them here without a network round trip;
                 it reads memory before the debugger asks, so leave it off
                 when reading device memory with read side effects
  -timeout D     how long to wait for the server and for the target to stop
                 (default 10s)
  -wait D        reverse connections (server=@{tcp:clicon=...}): how long to
                 wait for kdsrv to connect (default 0: until interrupted)
  -cpu N         processor for regs (default 0)
  -json          machine-readable output (one JSON object per line)
  -trace         print every KD packet of a command on standard error
  -QR            list servers on a host (\\ before the host is optional;
                 no host = this machine); with -browse, servers announced
                 on the local network by mDNS. Only servers running as
                 root (elevated on Windows) are listed, never hidden ones
  -qr-port N     UDP port the host answers -QR on (default 50100)
  -dry-run       parse and validate -k, print it normalised, and exit
  -v             log connection events on standard error

`

type cliOptions struct {
	k          string
	listen     string
	takeover   bool
	readahead  bool
	timeout    time.Duration
	wait       time.Duration
	cpu        uint
	json       bool
	trace      bool
	qr         bool
	browse     bool
	qrPort     int
	timeoutSet bool
	dryRun     bool
	verbose    bool
}

// Main runs kdclient with args (without the program name) and returns the
// process exit code: 0 success, 1 failure, 2 bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o cliOptions
	fs := flag.NewFlagSet("kdclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, Usage+spec.ClientHelp) }
	fs.StringVar(&o.k, "k", "", "kdsrv:server=@{...},trans=@{...}")
	fs.StringVar(&o.listen, "listen", "", "bridge endpoint: unix:PATH, tcp:HOST:PORT or pty")
	fs.BoolVar(&o.takeover, "takeover", false, "take the target over from another client")
	fs.BoolVar(&o.readahead, "readahead", false, "let kdsrv read ahead of sequential memory reads")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time-out for connecting and for the target to stop")
	fs.DurationVar(&o.wait, "wait", 0, "clicon: how long to wait for the server to connect (0 = until interrupted)")
	fs.UintVar(&o.cpu, "cpu", 0, "processor for regs")
	fs.BoolVar(&o.json, "json", false, "JSON output")
	fs.BoolVar(&o.trace, "trace", false, "print KD packets on standard error")
	fs.BoolVar(&o.qr, "QR", false, "list the KD connection servers on a host")
	fs.BoolVar(&o.browse, "browse", false, "with -QR: list servers announced on the local network")
	fs.IntVar(&o.qrPort, "qr-port", discovery.DefaultPort, "with -QR: the host's discovery UDP port")
	fs.BoolVar(&o.dryRun, "dry-run", false, "parse and print -k, then exit")
	fs.BoolVar(&o.verbose, "v", false, "verbose")
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	errf := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdclient: "+format+"\n", a...)
		return 1
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdclient: "+format+"\n(kdclient -h shows the usage)\n", a...)
		return 2
	}
	if o.qr {
		fs.Visit(func(f *flag.Flag) { o.timeoutSet = o.timeoutSet || f.Name == "timeout" })
		return runQR(ctx, o, pos, stdout, stderr)
	}
	if o.k == "" {
		return usage("missing -k 'kdsrv:server=@{...},trans=@{...}'")
	}
	c, err := spec.ParseConnect(o.k)
	if err != nil {
		return usage("-k: %v", err)
	}
	for _, w := range c.Server.Warnings() {
		fmt.Fprintf(stderr, "kdclient: warning: %s\n", w)
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
	logger := log.New(io.Discard, "", 0)
	if o.verbose {
		logger = log.New(stderr, "kdclient: ", log.LstdFlags)
	}
	copts := Options{TakeOver: o.takeover, Logger: logger, HandshakeTimeout: o.timeout}

	// Commands that need no target.
	if len(pos) > 0 && pos[0] == "endpsrv" {
		return runEndpsrv(ctx, c, copts, o, stdout, stderr, errf)
	}
	var cmd func(ctx context.Context, cm *Commander, b *Bridge) error
	if o.listen == "" {
		cmd, err = parseCommand(o, pos)
		if err != nil {
			return usage("%v", err)
		}
	}

	dctx, cancel := dialContext(ctx, c.Server, o, stderr)
	conn, err := Dial(dctx, c.Server, copts)
	cancel()
	if err != nil {
		return errf("%v", err)
	}
	defer conn.Close()
	octx, cancel := context.WithTimeout(ctx, o.timeout+5*time.Second)
	opened, err := conn.Open(octx, c.Trans)
	cancel()
	if err != nil {
		return errf("%v", err)
	}
	logger.Printf("opened %s on %s (session %d)", opened.Info, c.Server, opened.Session)

	b := NewBridge(conn)
	b.OnState(func(st wire.State) { fmt.Fprintf(stderr, "kdclient: target %s: %s\n", st.State, st.Text) })
	if o.readahead {
		actx, cancel := context.WithTimeout(ctx, o.timeout)
		err := b.EnableReadAhead(actx)
		cancel()
		if err != nil {
			return errf("%v", err)
		}
	}
	// The connection outlives ctx (Ctrl-C) long enough to detach cleanly,
	// so that the server has released the target when kdclient exits and
	// the next client can open it at once.
	rctx, stopRun := context.WithCancel(context.Background())
	var runResult error
	runDone := make(chan struct{})
	go func() {
		runResult = b.Run(rctx)
		close(runDone)
	}()
	finish := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.Detach(dctx)
		cancel()
		stopRun()
		<-runDone
	}

	if o.listen != "" {
		err := runBridge(ctx, b, o.listen, stdout, logger, runDone, func() error {
			if runResult == nil {
				return conn.Closed()
			}
			return runResult
		})
		finish()
		if err != nil {
			return errf("%v", err)
		}
		return 0
	}

	cm := &Commander{Out: stdout, JSON: o.json, AttachTimeout: o.timeout}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) && !o.json {
		cm.Progress = stderr
	}
	lcfg := kd.Config{}
	if o.trace {
		lcfg.Trace = func(d kd.Direction, p kd.Packet) { fmt.Fprintln(stderr, traceLine(d, p)) }
	}
	h, stopHost := b.Host(rctx, lcfg, kd.HostOptions{OnPrint: cm.PrintSink()})
	cm.Host = h
	cctx, cancelCmd := context.WithCancel(ctx)
	cmdErr := make(chan error, 1)
	go func() { cmdErr <- cmd(cctx, cm, b) }()
	select {
	case err = <-cmdErr:
	case <-runDone:
		err = runResult
		if err == nil {
			err = conn.Closed()
		}
		cancelCmd()
		<-cmdErr
	}
	cancelCmd()
	stopHost()
	finish()
	if err != nil {
		if ctx.Err() != nil {
			return 0 // interrupted (dbgprint ends this way)
		}
		return errf("%v", err)
	}
	return 0
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

func parseCommand(o cliOptions, pos []string) (func(context.Context, *Commander, *Bridge) error, error) {
	name, args := pos[0], pos[1:]
	want := func(n int, form string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s", form)
		}
		return nil
	}
	switch name {
	case "version", "break", "go", "dbgprint":
		if err := want(0, name); err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *Commander, b *Bridge) error {
			switch name {
			case "version":
				return cm.Version(ctx)
			case "break":
				return cm.Break(ctx)
			case "go":
				return cm.Go(ctx)
			}
			halted, _ := b.state()
			return cm.DbgPrint(ctx, halted)
		}, nil
	case "regs":
		if err := want(0, "regs [-cpu N]"); err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *Commander, _ *Bridge) error { return cm.Regs(ctx, uint16(o.cpu)) }, nil
	case "read":
		if err := want(2, "read ADDR LEN"); err != nil {
			return nil, err
		}
		addr, err := ParseAddress(args[0])
		if err != nil {
			return nil, err
		}
		n, err := ParseLength(args[1], 1<<20)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *Commander, _ *Bridge) error { return cm.Read(ctx, addr, n) }, nil
	case "write":
		if err := want(2, "write ADDR HEX"); err != nil {
			return nil, err
		}
		addr, err := ParseAddress(args[0])
		if err != nil {
			return nil, err
		}
		data, err := hex.DecodeString(strings.ReplaceAll(args[1], " ", ""))
		if err != nil || len(data) == 0 {
			return nil, fmt.Errorf("bad data %q: give bytes in hexadecimal, e.g. 90cc", args[1])
		}
		return func(ctx context.Context, cm *Commander, _ *Bridge) error { return cm.Write(ctx, addr, data) }, nil
	case "dump":
		if err := want(3, "dump ADDR LEN FILE"); err != nil {
			return nil, err
		}
		addr, err := ParseAddress(args[0])
		if err != nil {
			return nil, err
		}
		n, err := ParseLength(args[1], 1<<30)
		if err != nil {
			return nil, err
		}
		file := args[2]
		return func(ctx context.Context, cm *Commander, _ *Bridge) error {
			f, err := os.Create(file)
			if err != nil {
				return err
			}
			if err := cm.Dump(ctx, addr, n, f); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}, nil
	}
	return nil, fmt.Errorf("unknown command %q (commands: version, regs, read, write, break, go, dbgprint, dump, endpsrv)", name)
}

func traceLine(d kd.Direction, p kd.Packet) string {
	arrow := "->"
	if d == kd.Received {
		arrow = "<-"
	}
	s := fmt.Sprintf("kd %s %v", arrow, p)
	switch p.Type {
	case kd.TypeStateManipulate:
		if m, err := kd.DecodeManipulate(p.Payload); err == nil {
			s += " " + m.String()
		}
	case kd.TypeStateChange64:
		if sc, err := kd.DecodeStateChange(p.Payload); err == nil {
			s += " " + sc.String()
		}
	case kd.TypeDebugIO:
		if dio, err := kd.DecodeDebugIO(p.Payload); err == nil {
			s += " " + dio.String()
		}
	}
	return s
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runEndpsrv(ctx context.Context, c *spec.Connect, copts Options, o cliOptions, stdout, stderr io.Writer, errf func(string, ...any) int) int {
	dctx, cancel := dialContext(ctx, c.Server, o, stderr)
	defer cancel()
	conn, err := Dial(dctx, c.Server, copts)
	if err != nil {
		return errf("%v", err)
	}
	defer conn.Close()
	r, err := conn.Control(dctx, wire.CmdShutdown, nil)
	if err != nil {
		return errf("%v", err)
	}
	if r.Status != wire.OK {
		return errf("endpsrv refused: %s", r.Body)
	}
	fmt.Fprintln(stdout, string(r.Body))
	return 0
}

func runQR(ctx context.Context, o cliOptions, pos []string, stdout, stderr io.Writer) int {
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdclient: -QR: "+format+"\n(kdclient -h shows the usage)\n", a...)
		return 2
	}
	if len(pos) > 1 {
		return usage("give at most one host, got %q", pos)
	}
	if o.qrPort <= 0 || o.qrPort > 65535 {
		return usage("-qr-port %d is not a UDP port (1-65535)", o.qrPort)
	}
	timeout := 2 * time.Second // -QR's own default, not the session one
	if o.timeoutSet {
		if o.timeout <= 0 {
			return usage("-timeout must be positive")
		}
		timeout = o.timeout
	}
	if o.browse {
		if len(pos) > 0 {
			return usage("-browse lists the whole local network; it takes no host (got %q)", pos[0])
		}
		return runBrowse(ctx, o, timeout, stdout, stderr)
	}
	host := ""
	if len(pos) == 1 {
		// \\Host as typed for the original; an unquoted \\Host reaches
		// us from a Unix shell as \Host.
		host = strings.TrimLeft(pos[0], `\`)
		if host == "" {
			return usage("%q names no host", pos[0])
		}
	}
	res, err := discovery.Query(ctx, host, discovery.QueryOptions{Port: o.qrPort, Timeout: timeout})
	if err != nil {
		fmt.Fprintf(stderr, "kdclient: -QR: %v\n", err)
		return 1
	}
	display := host
	if display == "" || display == "." || strings.EqualFold(display, "localhost") {
		display = res.Host // this machine: show its name, as the original does
	}
	if res.Truncated {
		fmt.Fprintf(stderr, "kdclient: -QR: %s runs more servers than one answer can list; only the first %d are shown\n", display, len(res.Lines))
	}
	if o.json {
		b, err := discovery.FormatJSON(display, res.Lines)
		if err != nil {
			fmt.Fprintf(stderr, "kdclient: -QR: %v\n", err)
			return 1
		}
		_, _ = stdout.Write(b)
		return 0
	}
	fmt.Fprint(stdout, discovery.Format(display, res.Lines))
	return 0
}

// runBrowse lists the servers announced on the local network by multicast
// DNS, one line per transport.
func runBrowse(ctx context.Context, o cliOptions, timeout time.Duration, stdout, stderr io.Writer) int {
	res, err := discovery.Browse(ctx, timeout)
	if err != nil {
		fmt.Fprintf(stderr, "kdclient: -QR -browse: %v\n", err)
		return 1
	}
	if o.json {
		if res == nil {
			res = []discovery.BrowseResult{}
		}
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "kdclient: -QR -browse: %v\n", err)
			return 1
		}
		_, _ = stdout.Write(append(b, '\n'))
		return 0
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "No KD connection servers announced on the local network.")
		return 0
	}
	for _, r := range res {
		for _, l := range r.Lines {
			fmt.Fprintf(stdout, "%s (%s:%d) - %s\n", r.Instance, r.Host, r.Port, l)
		}
	}
	return 0
}

// runBridge serves local debuggers on endpoint ep until ctx ends or the
// server connection ends.
func runBridge(ctx context.Context, b *Bridge, ep string, stdout io.Writer, logger *log.Logger, runDone <-chan struct{}, runErr func() error) error {
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
		go func() { done <- b.Listen(bctx, ln, logger.Printf) }()
	case "npipe":
		// A named pipe on Windows (WinDbg: -k com:pipe,port=\\.\pipe\NAME),
		// a unix socket in the pipe directory elsewhere.
		ln, err := transport.ListenPipe(addr)
		if err != nil {
			return fmt.Errorf("-listen npipe:%s: %w", addr, err)
		}
		defer ln.Close()
		fmt.Fprintf(stdout, "kdclient: bridge ready on npipe:%s (%s)\n", addr, ln.Addr())
		go func() { done <- b.Listen(bctx, ln, logger.Printf) }()
	case "pty":
		path, serve, err := openBridgePTY()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "kdclient: bridge ready on pty %s (attach a debugger to that serial device)\n", path)
		go func() { done <- serve(bctx, b) }()
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

// listenEndpoint opens a bridge listener. A stale unix socket (left by a
// bridge that died) is replaced; any other existing file is not touched.
func listenEndpoint(kind, addr string) (net.Listener, error) {
	if kind == "unix" {
		if st, err := os.Lstat(addr); err == nil {
			if st.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("-listen unix:%s: the path exists and is not a socket; choose another path", addr)
			}
			if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("-listen unix:%s: another process is serving that socket", addr)
			}
			_ = os.Remove(addr)
		}
	}
	ln, err := net.Listen(kind, addr)
	if err != nil {
		return nil, fmt.Errorf("-listen %s:%s: %w", kind, addr, err)
	}
	return ln, nil
}
