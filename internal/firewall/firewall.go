// Package firewall implements IcfEnable: opening the host firewall for a
// kdsrv listener, as the original tool does with the Internet Connection
// Firewall option.
//
// Like the original, the rule is not removed when the server stops. Open
// returns the exact rule it added and the exact command that removes it so
// the caller can log both. Open never makes a server fail to start: any
// problem (no privileges, no firewall tool, a command that failed) comes
// back as an error that the caller logs as a warning, and the error text
// says what to run to open the port by hand.
//
// # Backends
//
// Linux, the rule used to pick a backend (Firewall.Backend overrides it):
//
//  1. If iptables is installed and its INPUT chain is in use (a policy other
//     than ACCEPT, or any rule), the host's firewall is iptables (directly,
//     or through ufw and the like): only an iptables ACCEPT in INPUT opens
//     the port, so the iptables backend inserts one, and one through
//     ip6tables when that is installed.
//  2. Otherwise, if nft is installed, the nftables backend adds
//     "tcp dport N accept" to the chain input of its own table inet kdsrv
//     (created if missing, hooked at filter input priority 0, policy
//     accept), which covers IPv4 and IPv6. It finds an existing rule for the
//     port instead of adding a duplicate, and names the rule by its handle
//     in the removal command.
//  3. Otherwise iptables, if installed; otherwise nothing is changed.
//
// In nftables an accept verdict only ends its own chain: another table that
// drops the packet (firewalld's, for instance) still wins. The Note of the
// result says so; hosts managed by such a tool must open the port there.
//
// Windows: netsh advfirewall adds an inbound allow rule named after the
// port ("kdsrv tcp 5005"); for named pipes, TCP ports 139 and 445.
//
// macOS: pf is not touched. The application firewall asks the user to allow
// incoming connections the first time kdsrv listens; the Note explains how
// to allow it beforehand.
//
// Named pipes on Linux and macOS are unix sockets, reachable only from the
// local machine, so OpenPipes changes nothing there.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// Backend names reported in Result.Backend.
const (
	BackendNftables = "nftables"
	BackendIptables = "iptables"
	BackendNetsh    = "netsh"
	BackendNone     = "none"
)

// Names of the nftables objects the nftables backend owns.
const (
	NftFamily = "inet"
	NftTable  = "kdsrv"
	NftChain  = "input"
)

// PipePorts are the TCP ports that Windows named pipes use remotely (SMB
// over NetBIOS and direct SMB); OpenPipes opens them on Windows.
var PipePorts = []int{139, 445}

// Request names the listener to open the firewall for.
type Request struct {
	Proto   string // "tcp" (or "udp"); case-insensitive
	Port    int    // 1–65535
	Comment string // attached to the rule, e.g. "kdsrv tcp:port=5005"; must not hold secrets
}

// Result says what Open did.
type Result struct {
	Backend  string // "nftables", "iptables", "netsh" or "none"
	Rule     string // exact rule added, as the command that adds it; "" if none
	Remove   string // exact command that removes it; "" if none
	Note     string // what else the user should know (limits, what to do)
	Existing bool   // Rule was already present, so nothing was added
}

// String is a one-line summary suitable for the server log.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "firewall (%s)", r.Backend)
	switch {
	case r.Rule != "" && r.Existing:
		fmt.Fprintf(&b, ": already present, nothing added: %s; remove it with: %s", r.Rule, r.Remove)
	case r.Rule != "":
		fmt.Fprintf(&b, ": added: %s; it stays after kdsrv exits; remove it with: %s", r.Rule, r.Remove)
	}
	if r.Note != "" {
		fmt.Fprintf(&b, "; %s", r.Note)
	}
	return b.String()
}

// Firewall opens ports through the host's firewall tool. The zero value is
// ready to use and runs the real tools.
type Firewall struct {
	// Runner runs the firewall commands; nil means ExecRunner{}.
	Runner Runner
	// Privileged reports whether this process may change the firewall; nil
	// means the platform check (Linux: CAP_NET_ADMIN, which root has;
	// Windows: an elevated token).
	Privileged func() bool
	// Backend forces "nftables" or "iptables" on Linux; "" picks one by the
	// rule in the package documentation.
	Backend string

	goos string // "" means runtime.GOOS; set by tests
}

// Open adds an accept rule for r with a Firewall using the real tools.
func Open(ctx context.Context, r Request) (Result, error) {
	return (&Firewall{}).Open(ctx, r)
}

// OpenPipes opens the firewall for remote named-pipe clients with a
// Firewall using the real tools.
func OpenPipes(ctx context.Context) (Result, error) {
	return (&Firewall{}).OpenPipes(ctx)
}

// Open adds an accept rule for the request. Problems come back as an error
// meant to be logged as a warning; the Result still says what was done.
func (f *Firewall) Open(ctx context.Context, r Request) (Result, error) {
	r, err := r.normalised()
	if err != nil {
		return Result{Backend: BackendNone}, err
	}
	switch f.os() {
	case "linux":
		return f.openLinux(ctx, r)
	case "windows":
		return f.openNetsh(ctx, r.Proto, []int{r.Port}, fmt.Sprintf("kdsrv %s %d", r.Proto, r.Port))
	case "darwin":
		return Result{Backend: BackendNone, Note: darwinNote(r)}, nil
	default:
		return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable is not supported on %s; the firewall was not changed; allow %s port %d in your firewall yourself", f.os(), r.Proto, r.Port)
	}
}

// OpenPipes opens the firewall for named-pipe clients: on Windows TCP
// ports 139 and 445; on Linux and macOS pipes are local unix sockets, so it
// returns Backend "none" with a Note and changes nothing.
func (f *Firewall) OpenPipes(ctx context.Context) (Result, error) {
	if f.os() == "windows" {
		return f.openNetsh(ctx, "tcp", PipePorts, "kdsrv npipe "+joinPorts(PipePorts))
	}
	return Result{
		Backend: BackendNone,
		Note:    "named pipes are unix sockets on this system and only local clients can reach them, so there is no port to open (remote clients use tcp or ssl)",
	}, nil
}

func (f *Firewall) os() string {
	if f.goos != "" {
		return f.goos
	}
	return runtime.GOOS
}

func (f *Firewall) runner() Runner {
	if f.Runner != nil {
		return f.Runner
	}
	return ExecRunner{}
}

func (f *Firewall) privileged() bool {
	if f.Privileged != nil {
		return f.Privileged()
	}
	return privileged()
}

// display renders argv as the user would type it, including the runner's
// command prefix (e.g. "ip netns exec NS").
func (f *Firewall) display(argv ...string) string {
	if p, ok := f.runner().(interface{ CommandPrefix() []string }); ok {
		argv = append(append([]string(nil), p.CommandPrefix()...), argv...)
	}
	if f.os() == "windows" {
		return strings.Join(argv, " ")
	}
	return shellJoin(argv)
}

// has reports whether the named program is installed.
func (f *Firewall) has(name string) bool {
	_, err := f.runner().LookPath(name)
	return err == nil
}

func (r Request) normalised() (Request, error) {
	r.Proto = strings.ToLower(strings.TrimSpace(r.Proto))
	if r.Proto != "tcp" && r.Proto != "udp" {
		return r, fmt.Errorf("IcfEnable: protocol %q is not tcp or udp; the firewall was not changed", r.Proto)
	}
	if r.Port < 1 || r.Port > 65535 {
		return r, fmt.Errorf("IcfEnable: port %d is outside 1–65535; the firewall was not changed", r.Port)
	}
	r.Comment = sanitizeComment(r.Comment)
	if r.Comment == "" {
		r.Comment = fmt.Sprintf("kdsrv %s:port=%d", r.Proto, r.Port)
	}
	return r, nil
}

var secretRE = regexp.MustCompile(`(?i)(password|key)=[^,\s]*`)

// sanitizeComment keeps a comment safe to pass to nft and iptables and to
// print: secrets are masked, unusual characters replaced, length capped.
func sanitizeComment(s string) string {
	s = secretRE.ReplaceAllString(s, "$1=*")
	b := []byte(strings.TrimSpace(s))
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(" .,:=/_+@*-", c) >= 0:
		default:
			b[i] = '_'
		}
	}
	const maxComment = 100 // nft allows 128 bytes, iptables 256
	if len(b) > maxComment {
		b = b[:maxComment]
	}
	return string(b)
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// notChanged builds the warning for a failure part-way, with the commands
// that would finish the job by hand.
func notChanged(what string, err error, manual string) error {
	return fmt.Errorf("IcfEnable: %s: %w; the firewall may not be open; to open it yourself run: %s", what, err, manual)
}

// exitCode returns the exit status carried by err, or -1.
func exitCode(err error) int {
	var ce *CmdError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}
