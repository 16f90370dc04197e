package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"kdsrv/internal/cli/kdsrvcli"
	"kdsrv/internal/sim"
	"kdsrv/internal/version"

	"kdsrv/internal/netem"
)

// ChildCommand is the hidden first argument that makes kdbench run as kdsrv
// (server.Main with the remaining arguments): the scale test starts its own
// executable this way, so that kdsrv's memory is measured in a process of
// its own without needing a kdsrv binary next to kdbench.
const ChildCommand = "run-kdsrv"

// Usage is kdbench's help text.
const Usage = `kdbench — measure kdsrv against a direct link and a dumb byte relay

Usage:
  kdbench [options]
  kdbench -wan-proxy LISTEN=TARGET [-rtt D -jitter D -rate R -loss P -seed N]

Runs, in one process and one after another, the same debugger workload
(small API calls, a memory dump, break-in) over:
  direct            debugger on the target's pipe, no network (the local baseline)
  byte_relay        debugger ─WAN─ TCP byte relay (socat-like, in-process) ─ target
  byte_relay_socat  the same with the real socat, when it is installed
  kdsrv             debugger ─ kdclient bridge ─WAN─ kdsrv ─ target
  kdsrv_readahead   the same with read-ahead on (dump only)
  attach            replays of a debugger attach (radare2's 45 calls; a
                    WinDbg-like walk of PsLoadedModuleList) over direct,
                    byte_relay, kdsrv and kdsrv with the bridge's
                    halted-target cache: wall time per replay
  loopback          direct vs kdsrv with no WAN: what kdsrv's extra hops cost
  scale             -sessions concurrent sessions through one kdsrv (no WAN)
The WAN is emulated in-process (delay, jitter, rate, loss). Read the
results as ratios between paths of one run.

-wan-proxy runs only the WAN emulator, as a TCP proxy from LISTEN to
TARGET (both host:port, meant for loopback), until SIGINT or SIGTERM: put
it between two real programs (kdclient and kdsrv, or two socat relays) to
measure them over the same emulated WAN. It prints "kdbench: WAN proxy
on ADDR" once it listens.

Options:
  -rtt D           WAN round-trip time (default 20ms)
  -jitter D        ± jitter per segment (default 2ms)
  -rate R          WAN rate, e.g. 10mbit, 100MB/s, 0 = unlimited (default 10mbit)
  -loss P          probability that a TCP segment is lost and retransmitted (default 0.001)
  -calls N         small calls per path (default 300)
  -dump SIZE       dump size, e.g. 4MiB, 512KiB (default 4MiB)
  -budget D        time limit of each calls or dump phase (default 15s)
  -sessions N      sessions of the scale test (default 1000)
  -scale-calls N   small calls per scale session (default 10)
  -attach-modules N  modules the attach module walk visits (default 150, all)
  -only LIST       comma-separated paths to run (default: all)
  -wan-proxy LISTEN=TARGET  run only the WAN emulator as a TCP proxy (above)
  -kdsrv WHERE     scale test's kdsrv: self (this executable as a child
                   process, default), inproc, or the path of a kdsrv binary
  -socat WHERE     auto (default: use socat if installed), off, or a path
  -seed N          seed of the WAN emulator's jitter and loss (default 1)
  -json            print one JSON object instead of the table
  -q               no progress lines on standard error
  -version         print the version (program, version, commit, Go, OS/arch)
                   and exit; also --version
`

// Main runs kdbench with args (without the program name) and returns the
// exit code: 0 success, 1 failure or errors during the run, 2 bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == ChildCommand {
		return kdsrvcli.Main(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("kdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, Usage) }
	var cfg Config
	rtt := fs.Duration("rtt", 20*time.Millisecond, "WAN round-trip time")
	jitter := fs.Duration("jitter", 2*time.Millisecond, "WAN jitter")
	rate := fs.String("rate", "10mbit", "WAN rate")
	loss := fs.Float64("loss", 0.001, "WAN segment loss probability")
	fs.IntVar(&cfg.Calls, "calls", 300, "small calls per path")
	dumpSize := fs.String("dump", "4MiB", "dump size")
	fs.DurationVar(&cfg.Budget, "budget", 15*time.Second, "time limit per phase")
	fs.IntVar(&cfg.Sessions, "sessions", 1000, "scale sessions")
	fs.IntVar(&cfg.ScaleCalls, "scale-calls", 10, "calls per scale session")
	fs.IntVar(&cfg.AttachModules, "attach-modules", AttachModules, "modules the attach walk visits")
	only := fs.String("only", "", "paths to run")
	wanProxy := fs.String("wan-proxy", "", "LISTEN=TARGET: run the WAN emulator as a TCP proxy")
	kdsrvBin := fs.String("kdsrv", "self", "scale test's kdsrv: self, inproc or a path")
	socat := fs.String("socat", "auto", "socat: auto, off or a path")
	seed := fs.Int64("seed", 1, "WAN emulator seed")
	asJSON := fs.Bool("json", false, "JSON output")
	quiet := fs.Bool("q", false, "no progress output")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		if *asJSON {
			fmt.Fprintln(stdout, version.Get("kdbench").JSON())
		} else {
			fmt.Fprintln(stdout, version.Get("kdbench"))
		}
		return 0
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdbench: "+format+"\n(kdbench -h shows the usage)\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	r, err := netem.ParseRate(*rate)
	if err != nil {
		return usage("-rate: %v", err)
	}
	if cfg.AttachModules < 1 || cfg.AttachModules > sim.Modules {
		return usage("-attach-modules: %d is out of range: the simulated target has %d modules", cfg.AttachModules, sim.Modules)
	}
	if *rtt < 0 || *jitter < 0 || *loss < 0 || *loss >= 1 {
		return usage("-rtt and -jitter must not be negative and -loss must be in [0, 1)")
	}
	cfg.WAN = netem.Profile{Delay: *rtt / 2, Jitter: *jitter, Rate: r, Loss: *loss, Seed: *seed}
	if *wanProxy != "" {
		listen, target, ok := strings.Cut(*wanProxy, "=")
		if !ok || listen == "" || target == "" {
			return usage("-wan-proxy %q: write LISTEN=TARGET, e.g. 127.0.0.1:7001=127.0.0.1:7000", *wanProxy)
		}
		return runWANProxy(ctx, listen, target, cfg.WAN, stdout, stderr)
	}
	if cfg.Dump, err = ParseSize(*dumpSize); err != nil {
		return usage("-dump: %v", err)
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
		if err := CheckOnly(cfg.Only); err != nil {
			return usage("-only: %v", err)
		}
	}
	switch *kdsrvBin {
	case "inproc":
	case "self":
		exe, err := os.Executable()
		if err != nil {
			return usage("-kdsrv self: cannot find this executable (%v); give -kdsrv inproc or a path", err)
		}
		cfg.KdsrvBinary = exe
		cfg.KdsrvArgs = []string{ChildCommand}
	default:
		cfg.KdsrvBinary = *kdsrvBin
	}
	switch *socat {
	case "off":
	case "auto":
		cfg.Socat, _ = exec.LookPath("socat")
	default:
		cfg.Socat = *socat
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kdbench: %v\n", err)
		if res == nil {
			return 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return 1
		}
	} else if err := res.WriteTable(stdout); err != nil {
		return 1
	}
	if err != nil || res.Errors() > 0 {
		return 1
	}
	return 0
}

// runWANProxy runs the WAN emulator between listen and target until ctx
// ends.
func runWANProxy(ctx context.Context, listen, target string, wan netem.Profile, stdout, stderr io.Writer) int {
	px, err := netem.NewProxy(listen, target, wan)
	if err != nil {
		fmt.Fprintf(stderr, "kdbench: -wan-proxy: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "kdbench: WAN proxy on %s to %s (%s)\n", px.Addr(), target, wan)
	<-ctx.Done()
	px.Close()
	st := px.Stats()
	fmt.Fprintf(stdout, "kdbench: WAN proxy stopped: %+v\n", st)
	return 0
}

// ParseSize reads a byte count such as "4MiB", "512KiB", "64k", "1M" or
// "4096" (K, M, G are powers of 1024 here: sizes of memory).
func ParseSize(s string) (int, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "B")
	t = strings.TrimSuffix(t, "i")
	mult := 1
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("size %q: write a positive number with an optional KiB, MiB or GiB suffix, at most 2GiB", s)
	}
	return n * mult, nil
}
