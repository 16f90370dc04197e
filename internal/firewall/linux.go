package firewall

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// nftChainSpec is the base chain the nftables backend creates if missing.
const nftChainSpec = "{ type filter hook input priority 0; policy accept; }"

func (f *Firewall) openLinux(ctx context.Context, r Request) (Result, error) {
	hasNft, hasIpt := f.has("nft"), f.has("iptables")
	backend := f.Backend
	switch backend {
	case "":
	case BackendNftables:
		if !hasNft {
			return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable: the nftables backend was asked for but nft is not installed; the firewall was not changed; install nftables or allow %s port %d yourself", r.Proto, r.Port)
		}
	case BackendIptables:
		if !hasIpt {
			return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable: the iptables backend was asked for but iptables is not installed; the firewall was not changed; install iptables or allow %s port %d yourself", r.Proto, r.Port)
		}
	default:
		return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable: unknown firewall backend %q (use %q or %q); the firewall was not changed", backend, BackendNftables, BackendIptables)
	}
	if !hasNft && !hasIpt {
		return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable: neither nft (nftables) nor iptables is installed; the firewall was not changed; install nftables, or allow %s port %d in your firewall yourself", r.Proto, r.Port)
	}
	if !f.privileged() {
		guess := backend
		if guess == "" {
			guess = BackendIptables
			if hasNft {
				guess = BackendNftables
			}
		}
		var manual string
		if guess == BackendNftables {
			manual = f.nftManual(r)
		} else {
			manual = f.iptablesManual(r)
		}
		return Result{Backend: guess}, fmt.Errorf("IcfEnable needs root (CAP_NET_ADMIN); the firewall was not changed; to open it yourself run: %s", manual)
	}
	if backend == "" {
		backend = BackendNftables
		if hasIpt && (!hasNft || f.iptablesInUse(ctx)) {
			backend = BackendIptables
		}
	}
	if backend == BackendNftables {
		return f.openNft(ctx, r)
	}
	return f.openIptables(ctx, r)
}

// nftRule is the rule text (after "add rule inet kdsrv input").
func nftRule(r Request) []string {
	return []string{r.Proto, "dport", strconv.Itoa(r.Port), "accept", "comment", strconv.Quote(r.Comment)}
}

func nftSetupArgv() [][]string {
	return [][]string{
		{"nft", "add", "table", NftFamily, NftTable},
		{"nft", "add", "chain", NftFamily, NftTable, NftChain, nftChainSpec},
	}
}

func nftAddArgv(r Request) []string {
	return append([]string{"nft", "add", "rule", NftFamily, NftTable, NftChain}, nftRule(r)...)
}

func (f *Firewall) nftManual(r Request) string {
	var cmds []string
	for _, argv := range append(nftSetupArgv(), nftAddArgv(r)) {
		cmds = append(cmds, "sudo "+f.display(argv...))
	}
	return strings.Join(cmds, " && ")
}

func (f *Firewall) openNft(ctx context.Context, r Request) (Result, error) {
	run := f.runner()
	res := Result{Backend: BackendNftables, Note: nftNote}
	for _, argv := range nftSetupArgv() {
		if _, err := run.Run(ctx, argv); err != nil {
			return res, notChanged("creating table "+NftFamily+" "+NftTable, err, f.nftManual(r))
		}
	}
	listArgv := []string{"nft", "-a", "list", "chain", NftFamily, NftTable, NftChain}
	out, err := run.Run(ctx, listArgv)
	if err != nil {
		return res, notChanged("listing chain "+NftFamily+" "+NftTable+" "+NftChain, err, f.nftManual(r))
	}
	if rule, ok := findNftRule(string(out), r.Proto, r.Port); ok {
		res.Rule = f.display(append([]string{"nft", "add", "rule", NftFamily, NftTable, NftChain}, rule.Text)...)
		res.Remove = f.display(nftDeleteArgv(rule.Handle)...)
		res.Existing = true
		return res, nil
	}
	add := nftAddArgv(r)
	out, err = run.Run(ctx, append([]string{"nft", "--echo", "--handle"}, add[1:]...))
	if err != nil {
		return res, notChanged("adding the rule", err, f.nftManual(r))
	}
	res.Rule = f.display(add...)
	handle, ok := parseNftHandle(string(out))
	if !ok {
		// Older nft versions do not echo; look the rule up instead.
		out, err = run.Run(ctx, listArgv)
		var rule nftListedRule
		if err == nil {
			rule, ok = findNftRule(string(out), r.Proto, r.Port)
		}
		if !ok {
			res.Remove = f.display("nft", "delete", "table", NftFamily, NftTable)
			res.Note = "the rule was added but its handle could not be read; the removal command deletes kdsrv's whole table. " + nftNote
			return res, nil
		}
		handle = rule.Handle
	}
	res.Remove = f.display(nftDeleteArgv(handle)...)
	return res, nil
}

const nftNote = "the rule is in table inet kdsrv (IPv4 and IPv6) and stays after kdsrv exits; " +
	"a drop in another nftables table or firewall manager (firewalld, ufw) still wins, so open the port there if you use one"

func nftDeleteArgv(handle int) []string {
	return []string{"nft", "delete", "rule", NftFamily, NftTable, NftChain, "handle", strconv.Itoa(handle)}
}

// nftListedRule is one rule line of "nft -a list chain".
type nftListedRule struct {
	Text   string // the rule without its handle comment
	Handle int
}

// findNftRule finds, in the output of "nft -a list chain ...", a rule that
// accepts proto destination port port unconditionally.
func findNftRule(listing, proto string, port int) (nftListedRule, bool) {
	want := strconv.Itoa(port)
	for line := range strings.SplitSeq(listing, "\n") {
		text, handle, ok := splitHandle(line)
		if !ok {
			continue
		}
		f := strings.Fields(text)
		if len(f) >= 4 && f[0] == proto && f[1] == "dport" && f[2] == want && f[3] == "accept" {
			// Shown to the user as the rule to add: spaced as nft
			// writes it, whatever whitespace the listing had.
			return nftListedRule{Text: strings.Join(f, " "), Handle: handle}, true
		}
	}
	return nftListedRule{}, false
}

// parseNftHandle reads the handle from the echo of "nft --echo --handle
// add rule ...".
func parseNftHandle(echo string) (int, bool) {
	for line := range strings.SplitSeq(echo, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "add rule ") {
			continue
		}
		if _, h, ok := splitHandle(line); ok {
			return h, true
		}
	}
	return 0, false
}

// splitHandle splits `text # handle N` into its parts.
func splitHandle(line string) (string, int, bool) {
	i := strings.LastIndex(line, "# handle ")
	if i < 0 {
		return "", 0, false
	}
	h, err := strconv.Atoi(strings.TrimSpace(line[i+len("# handle "):]))
	if err != nil || h <= 0 {
		return "", 0, false
	}
	return strings.TrimSpace(line[:i]), h, true
}

// iptablesInUse reports whether the iptables INPUT chain filters anything.
func (f *Firewall) iptablesInUse(ctx context.Context) bool {
	out, err := f.runner().Run(ctx, []string{"iptables", "-w", "-S", "INPUT"})
	return err == nil && iptablesChainInUse(string(out))
}

// iptablesChainInUse reads "iptables -S INPUT": in use means a policy
// other than ACCEPT or at least one rule.
func iptablesChainInUse(listing string) bool {
	for line := range strings.SplitSeq(listing, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "-P INPUT ACCEPT" {
			return true
		}
	}
	return false
}

func iptablesSpec(r Request) []string {
	return []string{"-p", r.Proto, "--dport", strconv.Itoa(r.Port), "-m", "comment", "--comment", r.Comment, "-j", "ACCEPT"}
}

// iptablesTools lists iptables, and ip6tables when installed.
func (f *Firewall) iptablesTools() []string {
	tools := []string{"iptables"}
	if f.has("ip6tables") {
		tools = append(tools, "ip6tables")
	}
	return tools
}

func (f *Firewall) iptablesManual(r Request) string {
	var cmds []string
	for _, tool := range f.iptablesTools() {
		cmds = append(cmds, "sudo "+f.display(append([]string{tool, "-I", "INPUT"}, iptablesSpec(r)...)...))
	}
	return strings.Join(cmds, " && ")
}

func (f *Firewall) openIptables(ctx context.Context, r Request) (Result, error) {
	run := f.runner()
	res := Result{Backend: BackendIptables}
	spec := iptablesSpec(r)
	tools := f.iptablesTools()
	var added, removes, present, presentRemoves []string
	finish := func() {
		res.Rule, res.Remove = strings.Join(added, " && "), strings.Join(removes, " && ")
	}
	for _, tool := range tools {
		insert := append([]string{tool, "-I", "INPUT"}, spec...)
		del := append([]string{tool, "-D", "INPUT"}, spec...)
		_, err := run.Run(ctx, append([]string{tool, "-w", "-C", "INPUT"}, spec...))
		switch {
		case err == nil:
			present = append(present, f.display(insert...))
			presentRemoves = append(presentRemoves, f.display(del...))
		case exitCode(err) == 1: // "Bad rule (does a matching rule exist in that chain?)"
			if _, err := run.Run(ctx, append([]string{tool, "-w", "-I", "INPUT"}, spec...)); err != nil {
				finish()
				return res, notChanged("adding the "+tool+" rule", err, f.iptablesManual(r))
			}
			added = append(added, f.display(insert...))
			removes = append(removes, f.display(del...))
		default:
			finish()
			return res, notChanged("checking the "+tool+" INPUT chain", err, f.iptablesManual(r))
		}
	}
	finish()
	notes := []string{"the rule is first in the INPUT chain and stays after kdsrv exits"}
	switch {
	case len(added) == 0:
		res.Rule, res.Remove, res.Existing = strings.Join(present, " && "), strings.Join(presentRemoves, " && "), true
	case len(present) > 0:
		notes = append(notes, "already present, not added again: "+strings.Join(present, " && "))
	}
	if len(tools) == 1 {
		notes = append(notes, "ip6tables is not installed, so IPv6 was not opened")
	}
	res.Note = strings.Join(notes, "; ")
	return res, nil
}
