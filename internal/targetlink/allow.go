package targetlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"kdsrv/internal/spec"
)

// AllowList is the set of targets kdsrv may open for its clients. It is
// immutable after NewAllowList and safe for concurrent use. The pattern
// language is described in the package documentation.
type AllowList struct {
	goos     string
	resolve  resolver
	lookup   lookupFunc // resolves host names of com:ipport targets
	patterns []string   // as given, defaults first
	rules    []rule
}

// lookupFunc resolves a host name to its IP addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// dnsLookup resolves with the system's resolver.
func dnsLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// DefaultLookupTimeout bounds the one name lookup of a com:ipport target
// when the caller's context has no earlier deadline.
const DefaultLookupTimeout = 5 * time.Second

// ruleKind says which targets a rule can admit.
type ruleKind int

const (
	rulePath ruleKind = iota // serial devices and pipes (unix paths, Windows COM names and \\ paths)
	ruleHost                 // com:ipport targets
	ruleNet                  // KDNET UDP ports
)

// rule is one parsed pattern.
type rule struct {
	text       string
	kind       ruleKind
	serialOnly bool     // a default: admits serial devices, never pipes
	globs      []string // rulePath: path.Match patterns in match form (see AllowList.norm)
	host       string   // ruleHost: lower-case host glob, or "localhost"
	ipPattern  bool     // ruleHost: host is an IP address or IP glob (matches addresses only)
	lo, hi     int      // ruleHost, ruleNet: port range
}

// DefaultPatterns returns the patterns kdsrv allows without -allow on this
// operating system: local serial devices only.
func DefaultPatterns() []string { return defaultPatterns(runtime.GOOS) }

func defaultPatterns(goos string) []string {
	switch goos {
	case "windows":
		return []string{"COM*"}
	case "darwin", "ios":
		return []string{"/dev/ttyS*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/cu.*"}
	}
	return []string{"/dev/ttyS*", "/dev/ttyUSB*", "/dev/ttyACM*"}
}

// DefaultAllow returns the allow-list kdsrv uses without -allow: local
// serial devices only (see DefaultPatterns).
func DefaultAllow() *AllowList {
	a, err := NewAllowList(nil, true)
	if err != nil {
		panic("targetlink: default patterns do not parse: " + err.Error())
	}
	return a
}

// NewAllowList parses the operator's -allow patterns. With includeDefaults
// the default serial device patterns (DefaultPatterns) come first. An
// invalid pattern is an error that names it and says what is wrong.
func NewAllowList(patterns []string, includeDefaults bool) (*AllowList, error) {
	return newAllowList(patterns, includeDefaults, runtime.GOOS, fsResolver)
}

func newAllowList(patterns []string, includeDefaults bool, goos string, res resolver) (*AllowList, error) {
	a := &AllowList{goos: goos, resolve: res, lookup: dnsLookup}
	if includeDefaults {
		for _, p := range defaultPatterns(goos) {
			r, err := a.parse(p)
			if err != nil {
				return nil, err
			}
			r.serialOnly = true
			a.rules = append(a.rules, r)
			a.patterns = append(a.patterns, p)
		}
	}
	for _, p := range patterns {
		r, err := a.parse(p)
		if err != nil {
			return nil, err
		}
		a.rules = append(a.rules, r)
		a.patterns = append(a.patterns, p)
	}
	return a, nil
}

// Patterns returns the patterns of the list in order, defaults first, as
// they were given.
func (a *AllowList) Patterns() []string { return slices.Clone(a.patterns) }

// String lists the patterns, separated by spaces.
func (a *AllowList) String() string { return strings.Join(a.patterns, " ") }

// patternError builds the error for an invalid -allow pattern.
func patternError(p, msg, hint string) error {
	s := "invalid -allow pattern " + quote(p) + ": " + msg
	if hint != "" {
		s += "; " + hint
	}
	return errors.New(s)
}

// parse turns one pattern into a rule.
func (a *AllowList) parse(p string) (rule, error) {
	s := p // spaces are kept: they may belong to a path
	r := rule{text: p}
	switch {
	case strings.TrimSpace(s) == "":
		return r, patternError(p, "empty pattern", "give a path glob, HOST:PORT or net:PORT")
	case len(s) >= 4 && strings.EqualFold(s[:4], "net:"):
		lo, hi, err := parsePortRange(s[4:])
		if err != nil {
			return r, patternError(p, err.Error(), "write net:PORT, net:A-B or net:*")
		}
		r.kind, r.lo, r.hi = ruleNet, lo, hi
		return r, nil
	case strings.ContainsAny(s, `/\`) || len(s) >= 3 && strings.EqualFold(s[:3], "com"):
		return a.parsePath(p, s)
	}
	return a.parseHost(p, s)
}

// hasMeta reports whether s contains a path.Match wildcard or escape.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func (a *AllowList) parsePath(p, s string) (rule, error) {
	r := rule{text: p, kind: rulePath}
	if strings.Contains(s, "**") {
		return r, patternError(p, `"**" is not supported`, `"*" matches within one path element; give one pattern per directory`)
	}
	if a.goos == "windows" {
		if !strings.HasPrefix(s, `\\`) && !strings.HasPrefix(s, "//") && !strings.EqualFold(s[:min(3, len(s))], "com") {
			return r, patternError(p, "not a Windows device, pipe or COM port pattern", `write COMn, COM*, \\.\pipe\Name or \\.\Device`)
		}
		g := winNorm(s)
		if _, err := path.Match(g, ""); err != nil {
			return r, patternError(p, "bad wildcard syntax", "use *, ? and [a-z] only")
		}
		r.globs = []string{g}
		return r, nil
	}
	if !strings.HasPrefix(s, "/") {
		// COM names on a system with device paths.
		if hasMeta(s) {
			return r, patternError(p, "a COM port glob means nothing on "+a.goos,
				"COM ports are device files here; write a device glob such as "+comGlobHint(a.goos))
		}
		dev, err := spec.COMDevice(s, a.goos)
		if err != nil {
			return r, patternError(p, "not a COM port or an absolute path", "write COMn, or an absolute device or socket path glob")
		}
		s = dev
	}
	g := path.Clean(s)
	if _, err := path.Match(g, ""); err != nil {
		return r, patternError(p, "bad wildcard syntax", `use *, ?, [a-z], and \ to escape one of them`)
	}
	r.globs = []string{g}
	if alias := a.resolvePattern(g); alias != "" && alias != g {
		r.globs = append(r.globs, alias)
	}
	return r, nil
}

// comGlobHint names the device glob that corresponds to COM* on goos.
func comGlobHint(goos string) string {
	switch goos {
	case "linux", "android":
		return "'/dev/ttyS*'"
	case "freebsd", "dragonfly":
		return "'/dev/cuau*'"
	case "darwin", "ios":
		return "'/dev/cu.*'"
	}
	return "'/dev/tty*'"
}

// resolvePattern resolves the symbolic links of the literal directory part of
// a unix path glob (up to the first element with a wildcard) and returns the
// glob with that part replaced, or "" when nothing could be resolved.
func (a *AllowList) resolvePattern(g string) string {
	if a.resolve == nil {
		return ""
	}
	elems := strings.Split(g, "/")
	i := 1
	for i < len(elems) && !hasMeta(elems[i]) {
		i++
	}
	if i == len(elems) {
		// No wildcard at all: the whole pattern is a literal path.
		r, err := a.resolve(g)
		if err != nil {
			return ""
		}
		return escapeGlob(r)
	}
	prefix := "/" + path.Join(elems[1:i]...)
	r, err := a.resolve(prefix)
	if err != nil {
		return ""
	}
	return path.Join(escapeGlob(r), path.Join(elems[i:]...))
}

func (a *AllowList) parseHost(p, s string) (rule, error) {
	r := rule{text: p, kind: ruleHost}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return r, patternError(p, "not a path (no slash), a COM port or HOST:PORT",
			"write /path/glob, COMn, HOST:PORT, HOST:*, [IPv6]:PORT or net:PORT")
	}
	host = strings.ToLower(strings.TrimPrefix(host, `\\`))
	if host == "" {
		return r, patternError(p, "the host is empty", "write HOST:PORT, or *:PORT for any host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
		r.ipPattern = true
	} else if _, err := path.Match(host, ""); err != nil || strings.ContainsAny(host, `\/`) {
		return r, patternError(p, "bad host glob", "use *, ? and [a-z] only")
	} else {
		r.ipPattern = isIPGlob(host)
	}
	lo, hi, err := parsePortRange(port)
	if err != nil {
		return r, patternError(p, err.Error(), "write HOST:PORT, HOST:A-B or HOST:*")
	}
	r.host, r.lo, r.hi = host, lo, hi
	return r, nil
}

// isIPGlob reports whether a host glob stands for IP addresses rather than
// names: "10.1.2.*", "192.168.[0-9].*", "fd00::*". Such a pattern matches
// literal addresses only, never a name that happens to look like one
// ("10.1.2.attacker.example"). "*" alone matches anything and is no IP glob.
func isIPGlob(host string) bool {
	if host == "*" {
		return false
	}
	if strings.Contains(host, ":") {
		return strings.Trim(host, "0123456789abcdef:.*?[]-^!") == ""
	}
	return strings.Trim(host, "0123456789.*?[]-^!") == "" && strings.ContainsAny(host, "0123456789.")
}

// parsePortRange parses "*", "N" or "A-B" (ports 1-65535).
func parsePortRange(s string) (lo, hi int, err error) {
	if s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	lo, ok := parsePortNumber(a)
	if !ok {
		return 0, 0, fmt.Errorf("port %s is not a number from 1 to 65535", quote(a))
	}
	hi = lo
	if isRange {
		if hi, ok = parsePortNumber(b); !ok {
			return 0, 0, fmt.Errorf("port %s is not a number from 1 to 65535", quote(b))
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("port range %s runs backwards", quote(s))
		}
	}
	return lo, hi, nil
}

func parsePortNumber(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n >= 1 && n <= 65535
}

// Check reports whether the list admits the target t. A refusal is a
// *NotAllowedError naming the pattern that would admit t; a target that
// cannot be opened on this system at all (a Windows pipe path on Linux, a
// COM number on macOS, an unresolvable path) is a different error.
//
// A com:ipport target given by host name is looked up (once, bounded by
// DefaultLookupTimeout) when only IP patterns could admit it.
func (a *AllowList) Check(t *spec.Target) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultLookupTimeout)
	defer cancel()
	_, err := a.admit(ctx, t, false)
	return err
}

// admit locates t and checks it against the rules; it returns where to open
// the target. With forDial, a com:ipport host name is always resolved, and
// the place lists the addresses of that one resolution that may be dialled.
func (a *AllowList) admit(ctx context.Context, t *spec.Target, forDial bool) (*place, error) {
	pl, err := locate(t, a.goos, a.resolve)
	if err != nil {
		return nil, err
	}
	switch pl.kind {
	case spec.TargetSerial, spec.TargetPipe:
		var missing []string
		if !a.matchPath(pl.given, pl.kind) {
			missing = append(missing, pl.given)
		}
		if a.norm(pl.real) != a.norm(pl.given) && !a.matchPath(pl.real, pl.kind) {
			missing = append(missing, pl.real)
		}
		if len(missing) > 0 {
			return nil, a.notAllowed(pl, missing)
		}
	case spec.TargetIPPort:
		if err := a.admitHost(ctx, pl, forDial); err != nil {
			return nil, err
		}
	case spec.TargetNet:
		if !a.matchNet(pl.port) {
			return nil, a.notAllowed(pl, nil)
		}
	}
	return pl, nil
}

// norm turns a path or device name into the form rules match against.
func (a *AllowList) norm(s string) string {
	if a.goos == "windows" {
		return winNorm(s)
	}
	return s
}

// winNorm lower-cases a Windows name, makes "/" the separator and writes a
// COM device \\.\COMn as comn, so that COM patterns and device patterns meet.
func winNorm(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, `\`, "/"))
	if rest, ok := strings.CutPrefix(s, "//./"); ok && strings.HasPrefix(rest, "com") {
		return rest
	}
	return s
}

func (a *AllowList) matchPath(name string, kind spec.TargetKind) bool {
	n := a.norm(name)
	for _, r := range a.rules {
		if r.kind != rulePath || r.serialOnly && kind != spec.TargetSerial {
			continue
		}
		for _, g := range r.globs {
			if ok, _ := path.Match(g, n); ok {
				return true
			}
		}
	}
	return false
}

// isLoopbackAddr reports whether ip is one of the addresses the pattern host
// "localhost" also stands for.
func isLoopbackAddr(ip netip.Addr) bool {
	return ip == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || ip == netip.IPv6Loopback()
}

// admitHost checks a com:ipport target. A literal IP address must match an
// IP pattern (or "*", or the localhost alias). A host name is admitted as
// given by a name pattern; otherwise, when an IP pattern covers the port,
// it is resolved once and admitted if some of its addresses match, and only
// those may be dialled. pl.addrs receives what to dial (with forDial, or
// when the name had to be resolved anyway).
func (a *AllowList) admitHost(ctx context.Context, pl *place, forDial bool) error {
	if ip, err := netip.ParseAddr(pl.host); err == nil {
		ip = ip.Unmap()
		if !a.matchIP(ip, pl.port) {
			return a.notAllowed(pl, nil)
		}
		pl.addrs = []netip.Addr{ip}
		return nil
	}
	byName := a.matchName(pl.host, pl.port)
	if !byName && !a.hasIPRule(pl.port) {
		return a.notAllowed(pl, nil)
	}
	if !byName || forDial {
		addrs, err := a.lookupHost(ctx, pl)
		if err != nil {
			return err
		}
		if !byName {
			addrs = slices.DeleteFunc(addrs, func(ip netip.Addr) bool { return !a.matchIP(ip, pl.port) })
			if len(addrs) == 0 {
				return a.notAllowed(pl, nil)
			}
		}
		pl.addrs = addrs
	}
	return nil
}

// lookupHost resolves pl.host once.
func (a *AllowList) lookupHost(ctx context.Context, pl *place) ([]netip.Addr, error) {
	lookup := a.lookup
	if lookup == nil {
		lookup = dnsLookup
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultLookupTimeout)
		defer cancel()
	}
	addrs, err := lookup(ctx, pl.host)
	if err != nil || len(addrs) == 0 {
		return nil, targetError(pl.desc, "cannot resolve the host name on the server", "check the name, or give an IP address")
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, ip := range addrs {
		ip = ip.Unmap()
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out, nil
}

// matchIP reports whether an IP pattern (or "*", or localhost for the
// loopback addresses) admits ip on port.
func (a *AllowList) matchIP(ip netip.Addr, port int) bool {
	s := ip.String()
	for _, r := range a.rules {
		if r.kind != ruleHost || port < r.lo || port > r.hi {
			continue
		}
		switch {
		case r.host == "*":
			return true
		case r.host == "localhost" && isLoopbackAddr(ip):
			return true
		case r.ipPattern:
			if ok, _ := path.Match(r.host, s); ok {
				return true
			}
		}
	}
	return false
}

// matchName reports whether a name pattern admits the host name as given.
func (a *AllowList) matchName(host string, port int) bool {
	for _, r := range a.rules {
		if r.kind != ruleHost || r.ipPattern || port < r.lo || port > r.hi {
			continue
		}
		if ok, _ := path.Match(r.host, host); ok {
			return true
		}
	}
	return false
}

// hasIPRule reports whether some IP pattern covers port.
func (a *AllowList) hasIPRule(port int) bool {
	for _, r := range a.rules {
		if r.kind == ruleHost && (r.ipPattern || r.host == "localhost") && port >= r.lo && port <= r.hi {
			return true
		}
	}
	return false
}

func (a *AllowList) matchNet(port int) bool {
	for _, r := range a.rules {
		if r.kind == ruleNet && port >= r.lo && port <= r.hi {
			return true
		}
	}
	return false
}

// NotAllowedError is returned when the allow-list does not admit a target.
// Its message (Error) is meant for the remote user: it names the target as
// the client gave it and the -allow flag the server's operator could add,
// but never where a path leads on the server (a symbolic link's target, the
// file behind /proc/self/fd/N). Detail adds that for the server's log.
type NotAllowedError struct {
	Target   string   // the target as Stream.String() would show it
	Resolved string   // where the path leads through symbolic links, when that differs and is refused (server side only)
	Suggest  string   // an exact -allow pattern that admits the target (the first of Patterns)
	Patterns []string // every exact pattern needed: two when both the path and its resolved form are refused
	Glob     string   // a broader glob that would also admit it, or ""
}

// Error says that the target is refused and how to admit it, without
// revealing anything about the server's file system.
func (e *NotAllowedError) Error() string { return e.text(false) }

// Detail is Error with where a refused path leads and every pattern that
// would admit it: for the operator's log, never for the client.
func (e *NotAllowedError) Detail() string { return e.text(true) }

func (e *NotAllowedError) text(detail bool) string {
	var b strings.Builder
	b.WriteString("target ")
	b.WriteString(quote(e.Target))
	b.WriteString(" is not allowed by this kdsrv")
	pats := e.Patterns
	if len(pats) == 0 && e.Suggest != "" {
		pats = []string{e.Suggest}
	}
	glob := e.Glob
	if e.Resolved != "" {
		if detail {
			b.WriteString(": it leads through a symbolic link to ")
			b.WriteString(quote(e.Resolved))
		} else {
			b.WriteString(": it leads through a symbolic link to a place the allow-list does not admit")
			// Name only the patterns for what the client gave: the
			// pattern for the resolved path would reveal it.
			if len(pats) < 2 {
				b.WriteString("; the operator can see where in the server's log")
				return b.String()
			}
			pats, glob = pats[:1], ""
		}
	}
	b.WriteString("; the operator can admit it with")
	for _, p := range pats {
		b.WriteString(" -allow ")
		b.WriteString(shellQuote(p))
	}
	if glob != "" && glob != e.Suggest {
		b.WriteString(" (or a glob such as -allow ")
		b.WriteString(shellQuote(glob))
		b.WriteString(")")
	}
	if e.Resolved != "" && !detail {
		b.WriteString(", and a pattern for where the link leads (the server's log names it)")
	}
	return b.String()
}

// notAllowed builds the refusal for pl; missing lists the refused names of a
// serial device or pipe.
func (a *AllowList) notAllowed(pl *place, missing []string) *NotAllowedError {
	e := &NotAllowedError{Target: pl.desc}
	switch pl.kind {
	case spec.TargetSerial, spec.TargetPipe:
		for _, m := range missing {
			if m != pl.given {
				e.Resolved = m
			}
			e.Patterns = append(e.Patterns, a.literal(m))
		}
		e.Suggest = e.Patterns[0]
		if len(missing) == 1 {
			e.Glob = a.globFor(missing[0], pl.kind)
		}
	case spec.TargetIPPort:
		e.Suggest = net.JoinHostPort(pl.host, strconv.Itoa(pl.port))
		e.Glob = net.JoinHostPort(pl.host, "*")
		e.Patterns = []string{e.Suggest}
	case spec.TargetNet:
		e.Suggest = "net:" + strconv.Itoa(pl.port)
		e.Glob = "net:*"
		e.Patterns = []string{e.Suggest}
	}
	return e
}

// literal returns a pattern that matches exactly name.
func (a *AllowList) literal(name string) string {
	if a.goos == "windows" {
		if n := winNorm(name); strings.HasPrefix(n, "com") {
			return strings.ToUpper(n)
		}
		return name // Windows names cannot hold * or ?, and \ is a separator there
	}
	return escapeGlob(name)
}

// escapeGlob escapes the path.Match metacharacters of a literal path.
func escapeGlob(s string) string {
	if !hasMeta(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// globFor suggests a broader pattern for name: the same directory and
// extension (/run/vm/*.sock), the same device family (/dev/ttyUSB*), COM*.
func (a *AllowList) globFor(name string, kind spec.TargetKind) string {
	sep := "/"
	if a.goos == "windows" {
		if strings.HasPrefix(winNorm(name), "com") {
			return "COM*"
		}
		sep = `\`
	}
	i := strings.LastIndex(name, sep)
	if i < 0 {
		return ""
	}
	dir, base := name[:i+1], name[i+1:]
	lit := a.literal
	if kind == spec.TargetSerial {
		stem := strings.TrimRight(base, "0123456789")
		if stem != "" && stem != base {
			return lit(dir+stem) + "*"
		}
	}
	if dot := strings.LastIndexByte(base, '.'); dot > 0 {
		return lit(dir) + "*" + lit(base[dot:])
	}
	return lit(dir) + "*"
}

// shellQuote quotes s for a POSIX shell command line.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quote quotes s for a message like %q, but leaves backslashes alone
// (Windows names are full of them) and shows control characters as \xNN so
// that a message stays on one line.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
