package kdsrvcli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"kdsrv/internal/certstore"
	"kdsrv/internal/cli/clikit"
)

// "kdsrv cert create" and "kdsrv cert list": make a self-signed server
// certificate for the ssl/spipe transports, and show what a store holds.

// CertUsage is the help text of "kdsrv cert".
const CertUsage = `kdsrv cert — certificates for the ssl and spipe transports

Usage:
  kdsrv cert create NAME [-machine] [-host H]... [-days N] [-force] [-store DIR]
  kdsrv cert list [-machine] [-store DIR]

create makes a self-signed ECDSA P-256 certificate with subject CN=NAME, for
TLS server authentication, and stores it with its key (NAME.crt, NAME.key
mode 0600) in the user store (the store certuser= reads) or, with -machine,
in the machine store (machuser=). It prints the certificate's thumbprint,
which clients pin, and the options to use on both sides.

list shows every certificate of a store: common name, friendly name, SHA-1
thumbprint (as the Windows certificate snap-in shows it), expiry, and
whether the store holds its private key.

Options:
  -machine     use the machine store instead of the user store
  -host H      a DNS name or IP address the certificate is valid for;
               repeatable, or comma-separated (default: localhost,
               127.0.0.1, ::1 and this machine's host name)
  -days N      validity in days (default 730)
  -force       replace NAME.crt and NAME.key if they exist
  -store DIR   use the PEM directory DIR as the store

Stores: user = $KDSRV_USER_CERTS, else ~/.config/kdsrv/certs; machine =
$KDSRV_MACHINE_CERTS, else /etc/kdsrv/certs (Windows: the system stores
CurrentUser\My and LocalMachine\My). See docs/certificates.md.
`

// certMain runs "kdsrv cert ARGS" and returns the exit code: 0 success,
// 1 failure, 2 bad usage.
func certMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdsrv cert: "+format+"\n(kdsrv cert -h shows the usage)\n", a...)
		return 2
	}
	if len(args) == 0 {
		return usage("missing command: create or list")
	}
	switch args[0] {
	case "create":
		return certCreate(args[1:], stdout, stderr)
	case "list", "ls":
		return certList(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		io.WriteString(stdout, CertUsage)
		return 0
	}
	return usage("unknown command %q: use create or list", args[0])
}

// hostsFlag collects -host values, repeatable or comma-separated.
type hostsFlag []string

func (h *hostsFlag) String() string { return strings.Join(*h, ",") }

func (h *hostsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

// certFlags holds the options shared by create and list.
type certFlags struct {
	machine bool
	store   string
	hosts   hostsFlag
	days    int
	force   bool
}

func (f *certFlags) storeOf() certstore.Store {
	scope := certstore.User
	if f.machine {
		scope = certstore.Machine
	}
	if f.store != "" {
		return certstore.DirStore(scope, f.store)
	}
	return certstore.Store{Scope: scope}
}

// parseCertFlags parses flags and positional arguments in any order. ok
// false means the caller exits with code (0 after -h, 2 after a flag error
// reported on stderr).
func parseCertFlags(name string, args []string, create bool, stderr io.Writer) (f *certFlags, pos []string, code int, ok bool) {
	f = new(certFlags)
	pos, code, ok = clikit.ParseFlags("kdsrv cert "+name, args, false, true, stderr, func(errOut io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("kdsrv cert "+name, flag.ContinueOnError)
		fs.SetOutput(errOut)
		fs.Usage = func() { io.WriteString(errOut, CertUsage) }
		fs.BoolVar(&f.machine, "machine", false, "use the machine store")
		fs.StringVar(&f.store, "store", "", "PEM directory to use as the store")
		if create {
			fs.Var(&f.hosts, "host", "DNS name or IP address (repeatable)")
			fs.IntVar(&f.days, "days", int(certstore.DefaultValidity/(24*time.Hour)), "validity in days")
			fs.BoolVar(&f.force, "force", false, "replace an existing certificate of that name")
		}
		return fs
	})
	return f, pos, code, ok
}

func certCreate(args []string, stdout, stderr io.Writer) int {
	f, pos, code, ok := parseCertFlags("create", args, true, stderr)
	if !ok {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kdsrv cert create: "+format+"\n(kdsrv cert -h shows the usage)\n", a...)
		return 2
	}
	switch {
	case len(pos) == 0:
		return usage("missing NAME (the certificate's subject name, e.g. kd-server)")
	case len(pos) > 1:
		return usage("one NAME only, got %q; quote a name with spaces", pos)
	case f.days <= 0 || f.days > 100*365:
		return usage("-days must be from 1 to 36500, not %d", f.days)
	}
	store := f.storeOf()
	e, err := certstore.Create(store, certstore.CreateOptions{
		Name:      pos[0],
		Hosts:     f.hosts,
		ValidFor:  time.Duration(f.days) * 24 * time.Hour,
		Overwrite: f.force,
	})
	if err != nil {
		fmt.Fprintf(stderr, "kdsrv cert create: %v\n", err)
		return 1
	}
	c := e.Certificate
	hosts := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	fmt.Fprintf(stdout, "Created a self-signed certificate in the %s\n", store)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  subject\tCN=%s\n", e.CommonName())
	fmt.Fprintf(tw, "  valid for\t%s\n", strings.Join(hosts, ", "))
	fmt.Fprintf(tw, "  valid\t%s to %s\n", c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(tw, "  thumbprint\t%s (SHA-1)\n", e.Thumbprint())
	fmt.Fprintf(tw, "  SHA-256\t%s\n", e.SHA256())
	fmt.Fprintf(tw, "  files\t%s, %s (mode 0600)\n", e.Source, e.KeySource)
	tw.Flush()

	opt, ref := "certuser", pos[0]
	if f.machine {
		opt = "machuser"
	}
	if !grammarSafe(ref) {
		ref = e.Thumbprint()
	}
	fmt.Fprintf(stdout, "\nServe with it:\n  kdsrv -t %s:proto=tls1,%s=%s,port=5005\n", "ssl", opt, ref)
	if f.store != "" {
		fmt.Fprintf(stdout, "  with %s=%s in kdsrv's environment, so that it reads this store\n", envFor(f.machine), f.store)
	}
	fmt.Fprintf(stdout, "Clients pin it with:\n  kdclient -k 'kdsrv:server=@{ssl:proto=tls1,server=%s,port=5005,thumbprint=%s},trans=@{...}'\n",
		exampleHost(hosts), e.Thumbprint())
	fmt.Fprintln(stdout, "Give the thumbprint to the people who connect through a channel you trust (not the same network path).")
	return 0
}

// grammarSafe reports whether a certificate name can be pasted into a -t
// value as it is: the transport grammar splits at commas, and quotes and
// braces are not allowed.
func grammarSafe(name string) bool {
	return name != "" && !strings.ContainsAny(name, ",{}\"'= \t")
}

func envFor(machine bool) string {
	if machine {
		return certstore.EnvMachineCerts
	}
	return certstore.EnvUserCerts
}

// exampleHost picks the host name a client would most likely use: the
// first DNS name that is not localhost, else the first name.
func exampleHost(hosts []string) string {
	for _, h := range hosts {
		if h != "localhost" && !strings.ContainsAny(h, ":") && strings.Trim(h, "0123456789.") != "" {
			return h
		}
	}
	if len(hosts) > 0 {
		return hosts[0]
	}
	return "HOST"
}

func certList(args []string, stdout, stderr io.Writer) int {
	f, pos, code, ok := parseCertFlags("list", args, false, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "kdsrv cert list: unexpected argument %q\n(kdsrv cert -h shows the usage)\n", pos[0])
		return 2
	}
	store := f.storeOf()
	entries, err := store.List()
	if err != nil {
		fmt.Fprintf(stderr, "kdsrv cert list: %v\n", err)
		return 1
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "The %s holds no certificates; \"kdsrv cert create NAME\" makes one.\n", store)
		return 0
	}
	slices.SortFunc(entries, func(a, b *certstore.Entry) int {
		if c := strings.Compare(strings.ToLower(a.CommonName()), strings.ToLower(b.CommonName())); c != 0 {
			return c
		}
		return a.Certificate.NotAfter.Compare(b.Certificate.NotAfter)
	})
	fmt.Fprintf(stdout, "%s:\n", store)
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMON NAME\tFRIENDLY NAME\tTHUMBPRINT (SHA-1)\tEXPIRES\tKEY\tSTATUS")
	for _, e := range entries {
		key := "yes"
		if e.Key == nil {
			key = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(e.CommonName()), dash(e.FriendlyName), e.Thumbprint(),
			e.Certificate.NotAfter.UTC().Format(time.DateOnly), key, certStatus(e, now))
	}
	tw.Flush()
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// certStatus says whether an entry can serve ssl/spipe now, or why not.
func certStatus(e *certstore.Entry, now time.Time) string {
	c := e.Certificate
	switch {
	case now.After(c.NotAfter):
		return "expired"
	case now.Before(c.NotBefore):
		return "not yet valid"
	case !certstore.AllowsServerAuth(c):
		return "not for servers"
	case e.Key == nil:
		return "no key (clients can pin it)"
	}
	return "usable"
}
