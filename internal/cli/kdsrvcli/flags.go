package kdsrvcli

import (
	"flag"
	"io"
	"strings"

	"kdsrv/internal/discovery"
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
	verbose      bool
	cliconRetry  bool
	passwordFile string

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
	fs.StringVar(&o.passwordFile, flagPasswordFile, "", "the password of every -t without password=, from the first line of FILE (mode 600)")
	fs.StringVar(&o.bind, "bind", "", "listen on this address only")
	fs.BoolVar(&o.dryRun, "dry-run", false, "parse and print every -t, then exit")
	fs.BoolVar(&o.allowEndpsrv, "allow-endpsrv", false, "let clients stop the server")
	fs.BoolVar(&o.verbose, "v", false, "verbose logging")
	fs.BoolVar(&o.cliconRetry, "clicon-retry", false, "reverse connections: keep retrying instead of exiting")
	fs.IntVar(&o.qrPort, flagQRPort, discovery.DefaultPort, "UDP port of the -QR responder (0 = no responder)")
	fs.StringVar(&o.registry, flagRegistry, "", "registry directory of discoverable servers (default "+discovery.DefaultDir()+")")
	fs.BoolVar(&o.noMDNS, flagNoMDNS, false, "do not announce this server by multicast DNS")
}

// newFlagSet returns kdsrv's flag set, writing errors and -h to stderr.
func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kdsrv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, Usage+spec.ServerHelp) }
	o.register(fs)
	return fs
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
