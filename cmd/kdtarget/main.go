// Command kdtarget is a simulated Windows x64 kernel debug target that
// speaks KDCOM on a unix socket, a TCP port or a pseudo-terminal, so kdsrv,
// kdclient and real debuggers (WinDbg/kd, radare2 winkd) can be tried
// without Windows. See kdtarget -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kdsrv/internal/kdnet"
	"kdsrv/internal/logx"
	"kdsrv/internal/sim"
	"kdsrv/internal/version"
)

// usageText is kdtarget's -h text. The addresses come from package sim.
var usageText = fmt.Sprintf(`kdtarget — a simulated Windows x64 kernel debug target (KDCOM)

Usage:
  kdtarget -listen unix:PATH | tcp:HOST:PORT | pty  [options]   serve debuggers
  kdtarget -listen serial:DEVICE[,baud=N]           [options]   on a serial port
  kdtarget -connect tcp:HOST:PORT | unix:PATH       [options]   dial out to one
  kdtarget -kdnet HOST:PORT -key a.b.c.d            [options]   KDNET over UDP

-listen waits for debuggers, one at a time: a new connection replaces the
current one, as on a VM serial port, and the machine keeps its state (a
debugger that re-attaches finds the target as the last one left it).
-listen pty allocates a pseudo-terminal in raw mode and prints its path; a
debugger may close and reopen it. -connect dials a debugger that listens,
like a VM serial port in client mode, and dials again with back-off when
the connection fails or closes. -kdnet makes the target a network-debugging
target of the debugger host HOST:PORT, like bcdedit /dbgsettings net
hostip:HOST port:PORT key:KEY: it pokes the host every 3 s until one
answers, and a host that restarts is found again by the next poke.

-listen serial:DEVICE serves debuggers on a serial port (/dev/ttyS0, COM1)
in raw 8N1 mode at baud N (default 115200), as a kernel's debug port does;
if the device fails it is opened again until it works.

As a VM's /init (process 1 on Linux), kdtarget mounts devtmpfs on /dev and
proc on /proc if they are missing, takes its options from the kernel
command line after "--" (e.g. append "console=ttyS0 -- -listen
serial:/dev/ttyS0"), turns the kernel's console messages down so they do
not cut into KD packets, and powers the machine off, saying why, if it
ever has to stop. scripts/vm-initramfs.sh builds such an initramfs.

When ready, kdtarget prints one line on standard output:
  kdtarget: listening on unix:/tmp/kd.sock
  kdtarget: listening on serial:/dev/ttyS0,baud=115200
  kdtarget: pty /dev/pts/5
  kdtarget: connecting to tcp:127.0.0.1:5555
  kdtarget: kdnet to 192.168.0.10:50000
Ctrl-C or SIGTERM stops it (exit status 0). Bad usage exits with 2, a
failure to set up the endpoint with 1.

Options:
  -listen EP        serve debuggers on EP: unix:PATH, tcp:HOST:PORT, pty,
                    serial:DEVICE[,baud=N]. One debugger at a time: a new
                    connection replaces the current one. A unix socket left
                    by a process that died is replaced; one that another
                    process still serves is refused (kdtarget used to take
                    it over), and no other kind of file is touched
  -connect EP       dial a debugger at EP: tcp:HOST:PORT, unix:PATH
  -kdnet HOST:PORT  be a KDNET target of the debugger host HOST:PORT (UDP)
  -key a.b.c.d      the KDNET key (with -kdnet); the host must use the same
  -kdnet-local ADDR local UDP address for -kdnet (default: a free port; give
                    :PORT to use the host's port as Windows does, which a
                    host started with target=IP needs)
  -build N          Windows build number reported to debuggers (default
                    18362, Windows 10 1903: the newest x64 build radare2
                    5.9 knows; WinDbg takes any, e.g. -build 19045)
  -sp N             service pack number, 0-255 (default 0)
  -cpus N           number of processors, 1-64 (default 1)
  -data-size BYTES  size of the pattern data region; K, M, G suffixes are
                    powers of 1024 (default 16M)
  -dbgprint D       while running, DbgPrint a line every D (e.g. 1s; 0 = off)
  -console TEXT     write TEXT on the line, outside KD packets, whenever a
                    debugger connects, as boot text on a shared serial port
                    looks (\n and \r are turned into line breaks); kdclient
                    ... console shows it
  -console-every D  also write a numbered console line every D (0 = off)
  -halted           start (and restart after a reboot) stopped at a
                    breakpoint instead of running
  -answer-reset     answer a RESET while running, as some VMs' debug stubs
                    do (a Windows kernel ignores it until it stops)
  -log-level L      debug, info (default), warn or error: info logs each
                    debugger connection, and its link counters when it ends,
                    on standard error
  -log-format F     text (default) or json (one JSON object per line with
                    time, level, msg and attributes)
  -v                the same as -log-level debug
  -version          print the version (program, version, commit, Go, OS/arch)
                    and exit; also --version
  -h                this help

Examples:
  radare2 (connects to an AF_UNIX stream socket):
    kdtarget -listen unix:/tmp/kd.sock
    r2 -d winkd:///tmp/kd.sock
  WinDbg/kd directly (it is a TCP client of a serial-over-IP port):
    kdtarget -listen tcp:0.0.0.0:5555
    kd -k com:ipport=5555,port=HOST
  WinDbg through a KD connection server and the kdclient bridge:
    kdtarget -listen unix:/run/kd/target.sock                  # server machine
    kdsrv -t tcp:port=5005 -allow '/run/kd/*.sock'              # server machine
    kdclient -k 'kdsrv:server=@{tcp:server=SERVER,port=5005},trans=@{com:pipe,port=/run/kd/target.sock}' -listen tcp:127.0.0.1:5555
    windbg -k com:ipport=5555,port=127.0.0.1                    # client machine
  KDNET through a KD connection server (kdsrv is the network debugging host):
    kdsrv -t tcp:port=5005 -allow net:50000                     # server machine
    kdtarget -kdnet SERVER:50000 -key 1.2.3.4                   # target machine
    KDSRV_KDNET_KEY=1.2.3.4 kdclient -insecure-send-kdnet-key -k 'kdsrv:server=@{tcp:server=SERVER,port=5005},trans=@{net:port=50000}' version
                                          (over tcp the key crosses in clear: use ssl off a lab network)
  Like a QEMU serial port:
    kdtarget -listen pty                          # QEMU -serial pty
    kdtarget -listen unix:/tmp/kd.sock            # QEMU -serial unix:/tmp/kd.sock,server
    kdtarget -connect tcp:127.0.0.1:5555          # QEMU -serial tcp:127.0.0.1:5555
  As the kernel of a QEMU guest (docs/setups.md), debugged on its COM1:
    scripts/vm-initramfs.sh kdtarget.cpio.gz
    qemu-system-x86_64 -m 256M -nographic -kernel /boot/vmlinuz-... \
      -initrd kdtarget.cpio.gz -append 'console=ttyS0 -- -listen serial:/dev/ttyS0' \
      -serial unix:/tmp/vm.sock,server=on,wait=off
    kdclient -k 'kdsrv:server=@{...},trans=@{com:pipe,port=/tmp/vm.sock}' version

Rebooting the simulated machine:
  kill -HUP PID     reboots it, like a VM's reset button: memory and
                    processors start afresh, the kernel loads at a new
                    address (KASLR) and the debug link restarts its packet
                    ids (the first packet of the new boot carries the sync
                    bit). A connected debugger stays connected; a KDNET
                    target pokes its host with a new session. kdtarget
                    prints "kdtarget: boot N: kernel at ADDR" on standard
                    error at each reboot.

The simulated kernel keeps its KD state, as a real one does: packet ids
continue across debugger connections, a stopped machine stays stopped on
the same state change, and a running one only polls for the break-in byte
(a RESET sent while it runs is consumed and ignored, unless -answer-reset).

Simulated memory (virtual addresses; the kernel image moves at every boot):
  KernBase          kernel image (nt), %d MiB; a minimal PE header at its
                    start; KernBase is in GetVersion and changes per boot
  KernBase+%#x  KDDEBUGGER_DATA64 block (KDBG), reachable from the
                    GetVersion DebuggerDataList; PsActiveProcessHead is
                    an empty list
  PsLoadedModuleList  %d modules in load order (ntoskrnl.exe, hal.dll, boot
                    drivers): x64 LDR_DATA_TABLE_ENTRY records at
                    KernBase+%#x, images with a PE header from
                    KernBase+%#x on, one every %d KiB
  KernBase+%#x  break-in address (int3; ret) where every stop is reported
  %#016x  data region of -data-size bytes: the byte at address A is
                      the top byte of A*0x9E3779B97F4A7C15 (mod 2^64), so
                      tests can check any read (sim.Pattern); writes to
                      any mapped address are remembered until a reboot
`, sim.KernSize>>20, sim.OffDebuggerDataBlock, sim.Modules, sim.OffLoaderEntries, sim.OffModules, sim.ModuleStride>>10, sim.OffBreakAddress, sim.DataBase)

// maxDataSize keeps the data region clear of the end of the address space.
const maxDataSize = 1 << 40

// options is the parsed command line. New endpoint kinds add a field here,
// a case in parseArgs' mode check and a case in serve.
type options struct {
	listen      string // -listen endpoint, as given
	connect     string // -connect endpoint, as given
	kdnet       string // -kdnet HOST:PORT
	kdnetKey    kdnet.Key
	kdLocal     string // -kdnet-local
	network     string // of the chosen endpoint
	address     string
	build       uint
	sp          uint
	cpus        int
	dataSize    byteSize
	dbgprint    time.Duration
	halted      bool
	answerReset bool
	log         logx.Flags    // -log-level, -log-format, -v
	version     bool          // -version, --version
	console     string        // -console TEXT: written on the line when a debugger connects
	consoleTick time.Duration // -console-every D
}

// errHelp is returned by parseArgs for -h.
var errHelp = flag.ErrHelp

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// byteSize is a flag value in bytes with optional K/M/G/T suffixes.
type byteSize uint64

func (b *byteSize) String() string { return strconv.FormatUint(uint64(*b), 10) }

func (b *byteSize) Set(s string) error {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
	}
	if shift > 0 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseUint(t, 0, 64)
	if err != nil || n == 0 || n > maxDataSize>>shift {
		return fmt.Errorf("%q is not a size from 1 byte to 1T (such as 4096, 64K, 16M)", s)
	}
	*b = byteSize(n << shift)
	return nil
}

func parseArgs(args []string) (*options, error) {
	o := &options{dataSize: 16 << 20}
	fs := flag.NewFlagSet("kdtarget", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.listen, "listen", "", "")
	fs.StringVar(&o.connect, "connect", "", "")
	fs.StringVar(&o.kdnet, "kdnet", "", "")
	var key string
	fs.StringVar(&key, "key", "", "")
	fs.StringVar(&o.kdLocal, "kdnet-local", "", "")
	fs.UintVar(&o.build, "build", defaultBuild, "")
	fs.UintVar(&o.sp, "sp", 0, "")
	fs.IntVar(&o.cpus, "cpus", 1, "")
	fs.Var(&o.dataSize, "data-size", "")
	fs.DurationVar(&o.dbgprint, "dbgprint", 0, "")
	fs.BoolVar(&o.halted, "halted", false, "")
	fs.BoolVar(&o.answerReset, "answer-reset", false, "")
	fs.StringVar(&o.console, "console", "", "")
	fs.DurationVar(&o.consoleTick, "console-every", 0, "")
	o.log.Register(fs)
	fs.BoolVar(&o.version, "version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	if o.version {
		return o, nil // nothing else matters
	}
	switch {
	case o.build < 1 || o.build > 65535:
		return nil, usagef("-build %d: a Windows build number is 1-65535", o.build)
	case o.sp > 255:
		return nil, usagef("-sp %d: the service pack number is 0-255", o.sp)
	case o.cpus < 1 || o.cpus > 64:
		return nil, usagef("-cpus %d: the simulated machine has 1-64 processors", o.cpus)
	case o.dbgprint < 0:
		return nil, usagef("-dbgprint %v: the interval cannot be negative (0 turns it off)", o.dbgprint)
	case o.consoleTick < 0:
		return nil, usagef("-console-every %v: the interval cannot be negative (0 turns it off)", o.consoleTick)
	case strings.Contains(o.console, "0000") || strings.Contains(o.console, "iiii"):
		return nil, usagef("-console: the text must not hold 0000 or iiii, which start KD packets")
	}
	// Exactly one endpoint mode.
	modes := 0
	for _, m := range []string{o.listen, o.connect, o.kdnet} {
		if m != "" {
			modes++
		}
	}
	switch {
	case modes > 1:
		return nil, usagef("-listen, -connect and -kdnet exclude each other: give one")
	case o.kdnet == "" && (key != "" || o.kdLocal != ""):
		return nil, usagef("-key and -kdnet-local go with -kdnet HOST:PORT")
	case o.kdnet != "":
		if _, _, err := net.SplitHostPort(o.kdnet); err != nil {
			return nil, usagef("-kdnet %q: give the debugger host as HOST:PORT, e.g. 192.168.0.10:50000", o.kdnet)
		}
		if key == "" {
			return nil, usagef("-kdnet needs -key a.b.c.d, the key the host uses")
		}
		k, err := kdnet.ParseKey(key)
		if err != nil {
			return nil, usagef("-key: %v", err)
		}
		o.kdnetKey = k
	case o.listen != "":
		n, a, err := sim.ParsePort(o.listen)
		if err != nil {
			return nil, usagef("-listen: %v", err)
		}
		o.network, o.address = n, a
	case o.connect != "":
		n, a, err := sim.ParsePort(o.connect)
		if err != nil {
			return nil, usagef("-connect: %v", err)
		}
		if n == sim.NetworkPTY {
			return nil, usagef("-connect pty: a pty cannot be dialled; use -listen pty")
		}
		if n == sim.NetworkSerial {
			return nil, usagef("-connect %s: a serial port is not dialled; use -listen %s", o.connect, o.connect)
		}
		o.network, o.address = n, a
	default:
		return nil, usagef("say where debuggers reach the target: -listen unix:PATH|tcp:HOST:PORT|pty|serial:DEVICE, -connect tcp:HOST:PORT|unix:PATH or -kdnet HOST:PORT -key a.b.c.d")
	}
	return o, nil
}

func (o *options) config() sim.Config {
	return sim.Config{
		Build:                   uint16(o.build),
		ServicePack:             uint8(o.sp),
		Processors:              o.cpus,
		DataSize:                uint64(o.dataSize),
		PrintEvery:              o.dbgprint,
		Console:                 unescapeConsole(o.console),
		ConsoleEvery:            o.consoleTick,
		StartHalted:             o.halted,
		AnswerResetWhileRunning: o.answerReset,
	}
}

// serve runs the chosen endpoint until ctx ends.
func (o *options) serve(ctx context.Context, t *sim.Machine, stdout io.Writer, logger *slog.Logger) error {
	eo := sim.PortOptions{Logger: logger}
	switch {
	case o.kdnet != "":
		eo.Ready = func(string) { fmt.Fprintf(stdout, "kdtarget: kdnet to %s\n", o.kdnet) }
		return sim.ServeKDNET(ctx, t, kdnet.TargetConfig{
			Config: kdnet.Config{Key: o.kdnetKey},
			Host:   o.kdnet,
			Local:  o.kdLocal,
		}, eo)
	case o.connect != "":
		eo.Ready = func(addr string) { fmt.Fprintf(stdout, "kdtarget: connecting to %s\n", addr) }
		return sim.Connect(ctx, t, o.network, o.address, eo)
	case o.network == sim.NetworkSerial:
		device, baud, err := sim.ParseSerial(o.address)
		if err != nil {
			return err
		}
		eo.Ready = func(addr string) { fmt.Fprintf(stdout, "kdtarget: listening on %s\n", addr) }
		return sim.ServeSerial(ctx, t, device, baud, eo)
	case o.network == sim.NetworkPTY:
		eo.Ready = func(path string) { fmt.Fprintf(stdout, "kdtarget: pty %s\n", path) }
		return sim.ServePTY(ctx, t, eo)
	default:
		eo.Ready = func(addr string) { fmt.Fprintf(stdout, "kdtarget: listening on %s\n", addr) }
		return sim.Listen(ctx, t, o.network, o.address, eo)
	}
}

// run is kdtarget with args (without the program name); it returns the
// exit status: 0 after a clean stop, 1 on failure, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kdtarget: %v\nRun kdtarget -h for help.\n", err)
		return 2
	}
	if o.version {
		if o.log.JSON() {
			fmt.Fprintln(stdout, version.Get("kdtarget").JSON())
		} else {
			fmt.Fprintln(stdout, version.Get("kdtarget"))
		}
		return 0
	}
	logger, err := o.log.New(stderr)
	if err != nil {
		logx.Fatal(stderr, o.log.JSON(), "kdtarget", err.Error(), "kdtarget -h shows the usage")
		return 2
	}
	t := sim.New(o.config())
	c := t.Config()
	logger.Info("simulating Windows", "build", c.Build, "sp", c.ServicePack, "cpus", c.Processors,
		"kernel", fmt.Sprintf("%#x", t.Layout().KernBase), "data", fmt.Sprintf("%#x+%#x", sim.DataBase, c.DataSize),
		"state", map[bool]string{true: "halted", false: "running"}[c.StartHalted])
	stopReboots := rebootOnHangup(t, stderr, logger, o.log.JSON())
	defer stopReboots()
	if err := o.serve(ctx, t, stdout, logger); err != nil {
		logx.Fatal(stderr, o.log.JSON(), "kdtarget", err.Error(), "")
		return 1
	}
	s := t.Stats()
	logger.Info("stopped", "connections", s.Connections, "requests", s.Requests)
	return 0
}

// rebootOnHangup reboots t at every SIGHUP and says so on w, until stop
// is called.
//
// With -log-format json the line is a log line (msg "rebooted").
func rebootOnHangup(t *sim.Machine, w io.Writer, logger *slog.Logger, asJSON bool) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				t.Reboot()
				if asJSON {
					logger.Info("rebooted", "boot", t.Boot(), "kernel", fmt.Sprintf("%#x", t.Layout().KernBase))
				} else {
					fmt.Fprintf(w, "kdtarget: boot %d: kernel at %#x\n", t.Boot(), t.Layout().KernBase)
				}
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}

func main() {
	args := os.Args[1:]
	pid1 := asInit()
	if pid1 {
		args = initSetup(args, os.Stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, args, os.Stdout, os.Stderr)
	stop()
	if pid1 {
		initExit(code, os.Stderr) // does not return
	}
	os.Exit(code)
}

// defaultBuild is the build kdtarget reports unless -build says otherwise:
// Windows 10 1903 (18362), the newest x64 build radare2 5.9 has profiles
// for, so that r2 -d winkd:// works against the default target.
const defaultBuild = 18362

// unescapeConsole turns the \n, \r and \t a shell leaves in -console TEXT
// into the characters.
func unescapeConsole(s string) string {
	return strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\t`, "\t").Replace(s)
}
