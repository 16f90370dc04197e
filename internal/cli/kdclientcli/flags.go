package kdclientcli

import (
	"flag"
	"io"
	"time"

	"kdsrv/internal/cli/clikit"
	"kdsrv/internal/discovery"
	"kdsrv/internal/logx"
	"kdsrv/internal/spec"
)

// cliOptions is kdclient's command line. To add a flag: a field here, one
// line in register, its line in Usage (usage.go), and its use in Main.
type cliOptions struct {
	k          string
	listen     string
	takeover   bool
	readahead  bool
	cache      bool // -cache (default on)
	timeout    time.Duration
	wait       time.Duration
	cpu        uint
	json       bool
	trace      clikit.TraceFlags // -trace FILE (- = standard error), -trace-format
	qr         bool
	browse     bool
	qrPort     int
	timeoutSet bool
	dryRun     bool
	log        logx.Flags // -log-level, -log-format, -v
	version    bool       // -version, --version

	keepPartial bool

	// Secrets kept off the command line (secrets.go).
	passwordFile         string
	kdnetKeyFile         string
	insecureSendKDNETKey bool
}

// register defines every flag of kdclient on fs.
func (o *cliOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.k, "k", "", "kdsrv:server=@{...},trans=@{...}")
	fs.StringVar(&o.listen, "listen", "", "bridge endpoint: unix:PATH, tcp:HOST:PORT or pty")
	fs.BoolVar(&o.takeover, "takeover", false, "take the target over from another client")
	fs.BoolVar(&o.readahead, "readahead", false, "let kdsrv read ahead of sequential memory reads")
	fs.BoolVar(&o.cache, "cache", true, "answer reads the debugger repeats while the target is halted locally (-cache=false: off)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time-out for connecting and for the target to stop")
	fs.DurationVar(&o.wait, "wait", 0, "clicon: how long to wait for the server to connect (0 = until interrupted)")
	fs.UintVar(&o.cpu, "cpu", 0, "processor for regs")
	fs.BoolVar(&o.json, "json", false, "JSON output")
	o.trace.Register(fs)
	fs.BoolVar(&o.qr, "QR", false, "list the KD connection servers on a host")
	fs.BoolVar(&o.browse, "browse", false, "with -QR: list servers announced on the local network")
	fs.IntVar(&o.qrPort, "qr-port", discovery.DefaultPort, "with -QR: the host's discovery UDP port")
	fs.BoolVar(&o.dryRun, "dry-run", false, "parse and print -k, then exit")
	o.log.Register(fs)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.passwordFile, flagPasswordFile, "", "read the server password from the first line of FILE (mode 600)")
	fs.StringVar(&o.kdnetKeyFile, flagKDNETKeyFile, "", "read the KDNET key of trans=@{net:...} from the first line of FILE (mode 600)")
	fs.BoolVar(&o.insecureSendKDNETKey, flagInsecureKDNET, false, "send a KDNET key over a transport that does not encrypt (tcp, npipe, com)")
	fs.BoolVar(&o.keepPartial, "keep-partial", false, "dump: keep what an interrupted or failed dump read, as FILE.partial")
}

// newFlagSet returns kdclient's flag set, writing errors and -h to errOut.
func newFlagSet(o *cliOptions, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kdclient", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { io.WriteString(fs.Output(), Usage+spec.ClientHelp) }
	o.register(fs)
	return fs
}
