package kdsrvcli

import (
	"flag"
	"io"
	"strings"

	"kdsrv/internal/discovery"
	"kdsrv/internal/logx"
	"kdsrv/internal/server"
	"kdsrv/internal/spec"
)

// options is kdsrv's command line. To add a flag: a field here, one line
// in register, its line in Usage (usage.go), and its use in run (main.go).
type options struct {
	transports   multiFlag // -t, repeatable
	allows       multiFlag // -allow, repeatable
	bind         string
	dryRun       bool
	allowEndpsrv bool
	cliconRetry  bool
	passwordFile string
	log          logx.Flags   // -log-level, -log-format, -v
	version      bool         // -version, --version
	observe      observeFlags // -metrics, -trace, -trace-format (observe.go)

	// Abuse limits and takeover policy (docs/security.md).
	limits      server.Limits
	takeoverAny bool

	// Discovery (discovery.go).
	qrPort   int
	registry string
	noMDNS   bool
}

// Flag names that messages mention.
const (
	flagQRPort       = "qr-port"
	flagRegistry     = "registry"
	flagNoMDNS       = "no-mdns"
	flagPasswordFile = "password-file"
)

// register defines every flag of kdsrv on fs.
func (o *options) register(fs *flag.FlagSet) {
	fs.Var(&o.transports, "t", "transport (repeatable)")
	fs.Var(&o.allows, "allow", "allow a target link pattern (repeatable)")
	fs.IntVar(&o.limits.FreeFailures, "auth-free-failures", server.DefaultFreeFailures, "failed password attempts in a row before a source has to wait (negative: no per-source throttle)")
	fs.DurationVar(&o.limits.BackoffMax, "auth-backoff-max", server.DefaultBackoffMax, "the longest wait of a source after failed password attempts")
	fs.Float64Var(&o.limits.FailuresPerSecond, "auth-failures-per-second", server.DefaultFailuresPerSecond, "server-wide ceiling on failed password attempts per second (negative: none)")
	fs.IntVar(&o.limits.MaxPreAuth, "max-preauth", 0, "unauthenticated connections in all (default 512, or a quarter of the descriptor limit; negative: no cap)")
	fs.IntVar(&o.limits.MaxPreAuthPerSource, "max-preauth-per-source", server.DefaultMaxPreAuthPerSource, "unauthenticated connections per source (negative: no cap)")
	fs.BoolVar(&o.takeoverAny, "takeover-any", false, "let any client take a target over, whatever its transport")
	fs.StringVar(&o.passwordFile, flagPasswordFile, "", "the password of every -t without password=, from the first line of FILE (mode 600)")
	fs.StringVar(&o.bind, "bind", "", "listen on this address only")
	fs.BoolVar(&o.dryRun, "dry-run", false, "parse and print every -t, then exit")
	fs.BoolVar(&o.allowEndpsrv, "allow-endpsrv", false, "let clients stop the server")
	o.log.Register(fs)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	o.observe.register(fs)
	fs.BoolVar(&o.cliconRetry, "clicon-retry", false, "reverse connections: keep retrying instead of exiting")
	fs.IntVar(&o.qrPort, flagQRPort, discovery.DefaultPort, "UDP port of the -QR responder (0 = no responder)")
	fs.StringVar(&o.registry, flagRegistry, "", "registry directory of discoverable servers (default "+discovery.DefaultDir()+")")
	fs.BoolVar(&o.noMDNS, flagNoMDNS, false, "do not announce this server by multicast DNS")
}

// newFlagSet returns kdsrv's flag set, writing errors and -h to errOut.
func newFlagSet(o *options, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kdsrv", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { io.WriteString(fs.Output(), Usage+spec.ServerHelp) }
	o.register(fs)
	return fs
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
