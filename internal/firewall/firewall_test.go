package firewall

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	nftTable   = "nft add table inet kdsrv"
	nftChain   = "nft add chain inet kdsrv input '{ type filter hook input priority 0; policy accept; }'"
	nftList    = "nft -a list chain inet kdsrv input"
	nftEchoAdd = `nft --echo --handle add rule inet kdsrv input tcp dport 5005 accept comment '"kdsrv tcp:port=5005"'`
	nftAdd     = `nft add rule inet kdsrv input tcp dport 5005 accept comment '"kdsrv tcp:port=5005"'`
	iptS       = "iptables -w -S INPUT"
	iptSpec    = "INPUT -p tcp --dport 5005 -m comment --comment 'kdsrv tcp:port=5005' -j ACCEPT"
)

const emptyChain = `table inet kdsrv {
	chain input { # handle 1
		type filter hook input priority filter; policy accept;
	}
}
`

const chainWith5005 = `table inet kdsrv {
	chain input { # handle 1
		type filter hook input priority filter; policy accept;
		tcp dport 15005 accept comment "kdsrv tcp:port=15005" # handle 2
		tcp dport 5005 accept comment "an older kdsrv" # handle 3
	}
}
`

const echo7 = `add rule inet kdsrv input tcp dport 5005 accept comment "kdsrv tcp:port=5005" # handle 7
# new generation 4 by process 9109 (nft)
`

var req5005 = Request{Proto: "tcp", Port: 5005, Comment: "kdsrv tcp:port=5005"}

func TestOpen(t *testing.T) {
	t.Parallel()
	ok := fakeReply{}
	missing := fakeReply{code: 1, out: "iptables: Bad rule (does a matching rule exist in that chain?)."}
	tests := []struct {
		name       string
		goos       string
		installed  []string
		privileged bool
		backend    string
		prefix     []string
		req        Request
		replies    map[string]fakeReply
		wantCalls  []string
		want       Result
		wantErr    string // substring; "" means no error
	}{
		{
			name: "nftables fresh", installed: []string{"nft"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{nftTable: ok, nftChain: ok, nftList: {out: emptyChain}, nftEchoAdd: {out: echo7}},
			wantCalls: []string{nftTable, nftChain, nftList, nftEchoAdd},
			want:      Result{Backend: "nftables", Rule: nftAdd, Remove: "nft delete rule inet kdsrv input handle 7", Note: nftNote},
		},
		{
			name: "nftables rule already present", installed: []string{"nft"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{nftTable: ok, nftChain: ok, nftList: {out: chainWith5005}},
			wantCalls: []string{nftTable, nftChain, nftList},
			want: Result{Backend: "nftables", Existing: true, Note: nftNote,
				Rule:   `nft add rule inet kdsrv input 'tcp dport 5005 accept comment "an older kdsrv"'`,
				Remove: "nft delete rule inet kdsrv input handle 3"},
		},
		{
			name: "nftables without echo falls back to listing", installed: []string{"nft"}, privileged: true, req: req5005,
			replies: map[string]fakeReply{nftTable: ok, nftChain: ok, nftEchoAdd: ok,
				nftList: {out: emptyChain}},
			wantCalls: []string{nftTable, nftChain, nftList, nftEchoAdd, nftList},
			want: Result{Backend: "nftables", Rule: nftAdd, Remove: "nft delete table inet kdsrv",
				Note: "the rule was added but its handle could not be read; the removal command deletes kdsrv's whole table. " + nftNote},
		},
		{
			name: "nftables in a network namespace", installed: []string{"nft"}, privileged: true, req: req5005,
			prefix:    []string{"ip", "netns", "exec", "ns1"},
			replies:   map[string]fakeReply{nftTable: ok, nftChain: ok, nftList: {out: emptyChain}, nftEchoAdd: {out: echo7}},
			wantCalls: []string{nftTable, nftChain, nftList, nftEchoAdd},
			want: Result{Backend: "nftables", Rule: "ip netns exec ns1 " + nftAdd,
				Remove: "ip netns exec ns1 nft delete rule inet kdsrv input handle 7", Note: nftNote},
		},
		{
			name: "nftables preferred when iptables is unused", installed: []string{"nft", "iptables"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{iptS: {out: "-P INPUT ACCEPT\n"}, nftTable: ok, nftChain: ok, nftList: {out: emptyChain}, nftEchoAdd: {out: echo7}},
			wantCalls: []string{iptS, nftTable, nftChain, nftList, nftEchoAdd},
			want:      Result{Backend: "nftables", Rule: nftAdd, Remove: "nft delete rule inet kdsrv input handle 7", Note: nftNote},
		},
		{
			name: "iptables when the host uses it", installed: []string{"nft", "iptables", "ip6tables"}, privileged: true, req: req5005,
			replies: map[string]fakeReply{iptS: {out: "-P INPUT DROP\n-A INPUT -i lo -j ACCEPT\n"},
				"iptables -w -C " + iptSpec: missing, "iptables -w -I " + iptSpec: ok,
				"ip6tables -w -C " + iptSpec: missing, "ip6tables -w -I " + iptSpec: ok},
			wantCalls: []string{iptS, "iptables -w -C " + iptSpec, "iptables -w -I " + iptSpec, "ip6tables -w -C " + iptSpec, "ip6tables -w -I " + iptSpec},
			want: Result{Backend: "iptables",
				Rule:   "iptables -I " + iptSpec + " && ip6tables -I " + iptSpec,
				Remove: "iptables -D " + iptSpec + " && ip6tables -D " + iptSpec,
				Note:   "the rule is first in the INPUT chain and stays after kdsrv exits"},
		},
		{
			name: "iptables only, no ip6tables", installed: []string{"iptables"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{"iptables -w -C " + iptSpec: missing, "iptables -w -I " + iptSpec: ok},
			wantCalls: []string{"iptables -w -C " + iptSpec, "iptables -w -I " + iptSpec},
			want: Result{Backend: "iptables", Rule: "iptables -I " + iptSpec, Remove: "iptables -D " + iptSpec,
				Note: "the rule is first in the INPUT chain and stays after kdsrv exits; ip6tables is not installed, so IPv6 was not opened"},
		},
		{
			name: "iptables rule already present", installed: []string{"iptables", "ip6tables"}, privileged: true, backend: "iptables", req: req5005,
			replies:   map[string]fakeReply{"iptables -w -C " + iptSpec: ok, "ip6tables -w -C " + iptSpec: ok},
			wantCalls: []string{"iptables -w -C " + iptSpec, "ip6tables -w -C " + iptSpec},
			want: Result{Backend: "iptables", Existing: true,
				Rule:   "iptables -I " + iptSpec + " && ip6tables -I " + iptSpec,
				Remove: "iptables -D " + iptSpec + " && ip6tables -D " + iptSpec,
				Note:   "the rule is first in the INPUT chain and stays after kdsrv exits"},
		},
		{
			name: "iptables forced although nft exists", installed: []string{"nft", "iptables"}, privileged: true, backend: "iptables", req: req5005,
			replies:   map[string]fakeReply{"iptables -w -C " + iptSpec: missing, "iptables -w -I " + iptSpec: ok},
			wantCalls: []string{"iptables -w -C " + iptSpec, "iptables -w -I " + iptSpec},
			want: Result{Backend: "iptables", Rule: "iptables -I " + iptSpec, Remove: "iptables -D " + iptSpec,
				Note: "the rule is first in the INPUT chain and stays after kdsrv exits; ip6tables is not installed, so IPv6 was not opened"},
		},
		{
			name: "iptables check fails", installed: []string{"iptables"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{"iptables -w -C " + iptSpec: {code: 4, out: "iptables: can't initialize iptables table `filter': Permission denied"}},
			wantCalls: []string{"iptables -w -C " + iptSpec},
			want:      Result{Backend: "iptables"},
			wantErr:   "IcfEnable: checking the iptables INPUT chain: iptables -w -C " + iptSpec + " failed with exit status 4: iptables: can't initialize iptables table `filter': Permission denied; the firewall may not be open; to open it yourself run: sudo iptables -I " + iptSpec,
		},
		{
			name: "nft add fails", installed: []string{"nft"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{nftTable: ok, nftChain: ok, nftList: {out: emptyChain}, nftEchoAdd: {code: 1, out: "Error: Could not process rule: Operation not supported"}},
			wantCalls: []string{nftTable, nftChain, nftList, nftEchoAdd},
			want:      Result{Backend: "nftables", Note: nftNote},
			wantErr:   "IcfEnable: adding the rule: " + nftEchoAdd + " failed with exit status 1: Error: Could not process rule: Operation not supported; the firewall may not be open; to open it yourself run: sudo " + nftTable + " && sudo " + nftChain + " && sudo " + nftAdd,
		},
		{
			name: "not root with nft", installed: []string{"nft", "iptables"}, req: req5005,
			want:    Result{Backend: "nftables"},
			wantErr: "IcfEnable needs root (CAP_NET_ADMIN); the firewall was not changed; to open it yourself run: sudo " + nftTable + " && sudo " + nftChain + " && sudo " + nftAdd,
		},
		{
			name: "not root with iptables only", installed: []string{"iptables", "ip6tables"}, req: req5005,
			want:    Result{Backend: "iptables"},
			wantErr: "IcfEnable needs root (CAP_NET_ADMIN); the firewall was not changed; to open it yourself run: sudo iptables -I " + iptSpec + " && sudo ip6tables -I " + iptSpec,
		},
		{
			name: "no firewall tool", privileged: true, req: req5005,
			want:    Result{Backend: "none"},
			wantErr: "IcfEnable: neither nft (nftables) nor iptables is installed; the firewall was not changed; install nftables, or allow tcp port 5005 in your firewall yourself",
		},
		{
			name: "forced nftables missing", installed: []string{"iptables"}, privileged: true, backend: "nftables", req: req5005,
			want:    Result{Backend: "none"},
			wantErr: "the nftables backend was asked for but nft is not installed",
		},
		{
			name: "unknown backend", installed: []string{"nft"}, privileged: true, backend: "pf", req: req5005,
			want:    Result{Backend: "none"},
			wantErr: `unknown firewall backend "pf"`,
		},
		{
			name: "bad port", installed: []string{"nft"}, privileged: true, req: Request{Proto: "tcp", Port: 70000},
			want:    Result{Backend: "none"},
			wantErr: "IcfEnable: port 70000 is outside 1–65535; the firewall was not changed",
		},
		{
			name: "bad protocol", installed: []string{"nft"}, privileged: true, req: Request{Proto: "sctp", Port: 1},
			want:    Result{Backend: "none"},
			wantErr: `IcfEnable: protocol "sctp" is not tcp or udp`,
		},
		{
			name: "windows netsh fresh", goos: "windows", installed: []string{"netsh"}, privileged: true, req: req5005,
			replies: map[string]fakeReply{
				`netsh advfirewall firewall show rule 'name="kdsrv tcp 5005"'`:                                                {code: 1, out: "No rules match the specified criteria."},
				`netsh advfirewall firewall add rule 'name="kdsrv tcp 5005"' dir=in action=allow protocol=TCP localport=5005`: {out: "Ok."},
			},
			wantCalls: []string{
				`netsh advfirewall firewall show rule 'name="kdsrv tcp 5005"'`,
				`netsh advfirewall firewall add rule 'name="kdsrv tcp 5005"' dir=in action=allow protocol=TCP localport=5005`,
			},
			want: Result{Backend: "netsh",
				Rule:   `netsh advfirewall firewall add rule name="kdsrv tcp 5005" dir=in action=allow protocol=TCP localport=5005`,
				Remove: `netsh advfirewall firewall delete rule name="kdsrv tcp 5005"`,
				Note:   "inbound allow rule for all firewall profiles; it stays after kdsrv exits"},
		},
		{
			name: "windows netsh rule already present", goos: "windows", installed: []string{"netsh"}, privileged: true, req: req5005,
			replies:   map[string]fakeReply{`netsh advfirewall firewall show rule 'name="kdsrv tcp 5005"'`: ok},
			wantCalls: []string{`netsh advfirewall firewall show rule 'name="kdsrv tcp 5005"'`},
			want: Result{Backend: "netsh", Existing: true,
				Rule:   `netsh advfirewall firewall add rule name="kdsrv tcp 5005" dir=in action=allow protocol=TCP localport=5005`,
				Remove: `netsh advfirewall firewall delete rule name="kdsrv tcp 5005"`,
				Note:   "a rule with this name was already present, so nothing was added"},
		},
		{
			name: "windows not elevated", goos: "windows", installed: []string{"netsh"}, req: req5005,
			want:    Result{Backend: "netsh"},
			wantErr: `IcfEnable needs an elevated prompt (Run as administrator); the Windows firewall was not changed; to open it yourself run as Administrator: netsh advfirewall firewall add rule name="kdsrv tcp 5005" dir=in action=allow protocol=TCP localport=5005`,
		},
		{
			name: "windows without netsh", goos: "windows", privileged: true, req: req5005,
			want:    Result{Backend: "none"},
			wantErr: "IcfEnable: netsh was not found",
		},
		{
			name: "unsupported system", goos: "plan9", privileged: true, req: req5005,
			want:    Result{Backend: "none"},
			wantErr: "IcfEnable is not supported on plan9; the firewall was not changed; allow tcp port 5005 in your firewall yourself",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fr := &fakeRunner{t: t, installed: map[string]bool{}, replies: tt.replies, prefix: tt.prefix}
			for _, n := range tt.installed {
				fr.installed[n] = true
			}
			goos := tt.goos
			if goos == "" {
				goos = "linux"
			}
			f := &Firewall{Runner: fr, Privileged: func() bool { return tt.privileged }, Backend: tt.backend, goos: goos}
			got, err := f.Open(context.Background(), tt.req)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Open: unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Open error = %v\nwant it to contain %s", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Open result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, fr.calls); diff != "" {
				t.Errorf("commands run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenPipes(t *testing.T) {
	t.Parallel()
	show := `netsh advfirewall firewall show rule 'name="kdsrv npipe 139,445"'`
	add := `netsh advfirewall firewall add rule 'name="kdsrv npipe 139,445"' dir=in action=allow protocol=TCP localport=139,445`
	fr := &fakeRunner{t: t, installed: map[string]bool{"netsh": true},
		replies: map[string]fakeReply{show: {code: 1}, add: {}}}
	f := &Firewall{Runner: fr, Privileged: func() bool { return true }, goos: "windows"}
	got, err := f.OpenPipes(context.Background())
	if err != nil {
		t.Fatalf("OpenPipes on windows: %v", err)
	}
	want := Result{Backend: "netsh",
		Rule:   `netsh advfirewall firewall add rule name="kdsrv npipe 139,445" dir=in action=allow protocol=TCP localport=139,445`,
		Remove: `netsh advfirewall firewall delete rule name="kdsrv npipe 139,445"`,
		Note:   "inbound allow rule for all firewall profiles; it stays after kdsrv exits"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OpenPipes on windows (-want +got):\n%s", diff)
	}

	for _, goos := range []string{"linux", "darwin"} {
		fr := &fakeRunner{t: t}
		f := &Firewall{Runner: fr, Privileged: func() bool { return true }, goos: goos}
		got, err := f.OpenPipes(context.Background())
		if err != nil || got.Backend != "none" || !strings.Contains(got.Note, "unix sockets") || got.Rule != "" {
			t.Errorf("OpenPipes on %s = %+v, %v; want Backend none and a note about unix sockets", goos, got, err)
		}
		if len(fr.calls) != 0 {
			t.Errorf("OpenPipes on %s ran %q; want nothing run", goos, fr.calls)
		}
	}
}

func TestOpenDarwinLeavesPfAlone(t *testing.T) {
	t.Parallel()
	fr := &fakeRunner{t: t, installed: map[string]bool{"pfctl": true}}
	f := &Firewall{Runner: fr, Privileged: func() bool { return true }, goos: "darwin"}
	got, err := f.Open(context.Background(), req5005)
	if err != nil {
		t.Fatalf("Open on darwin: %v", err)
	}
	if got.Backend != "none" || got.Rule != "" || !strings.Contains(got.Note, "does not change pf") ||
		!strings.Contains(got.Note, "socketfilterfw --add") || !strings.Contains(got.Note, "tcp port 5005") {
		t.Errorf("Open on darwin = %+v", got)
	}
	if len(fr.calls) != 0 {
		t.Errorf("Open on darwin ran %q; want nothing run", fr.calls)
	}
}

func TestCommentSanitised(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "kdsrv tcp:port=5005"},
		{"kdsrv tcp:port=5005,password=Secret1", "kdsrv tcp:port=5005,password=*"},
		{`evil" ; drop`, "evil_ _ drop"},
		{"kdsrv ssl:proto=tls1,certuser=My Cert,port=5005", "kdsrv ssl:proto=tls1,certuser=My Cert,port=5005"},
		{strings.Repeat("x", 300), strings.Repeat("x", 100)},
	}
	for _, tt := range tests {
		r, err := Request{Proto: "TCP", Port: 5005, Comment: tt.in}.normalised()
		if err != nil || r.Comment != tt.want || r.Proto != "tcp" {
			t.Errorf("normalised comment %q = %q (proto %q), %v; want %q", tt.in, r.Comment, r.Proto, err, tt.want)
		}
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	r := Result{Backend: "nftables", Rule: "nft add rule X", Remove: "nft delete rule Y", Note: "n"}
	if got, want := r.String(), "firewall (nftables): added: nft add rule X; it stays after kdsrv exits; remove it with: nft delete rule Y; n"; got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	r.Existing = true
	if got := r.String(); !strings.Contains(got, "already present, nothing added: nft add rule X") {
		t.Errorf("String() for an existing rule = %q", got)
	}
}

func TestParsers(t *testing.T) {
	t.Parallel()
	if r, ok := findNftRule(chainWith5005, "tcp", 5005); !ok || r.Handle != 3 {
		t.Errorf("findNftRule(5005) = %+v, %v; want handle 3", r, ok)
	}
	if r, ok := findNftRule(chainWith5005, "tcp", 15005); !ok || r.Handle != 2 {
		t.Errorf("findNftRule(15005) = %+v, %v; want handle 2", r, ok)
	}
	for _, port := range []int{500, 50050} {
		if r, ok := findNftRule(chainWith5005, "tcp", port); ok {
			t.Errorf("findNftRule(%d) matched %+v; ports must match exactly", port, r)
		}
	}
	if _, ok := findNftRule(chainWith5005, "udp", 5005); ok {
		t.Error("findNftRule matched a tcp rule for udp")
	}
	if h, ok := parseNftHandle(echo7); !ok || h != 7 {
		t.Errorf("parseNftHandle = %d, %v; want 7", h, ok)
	}
	if _, ok := parseNftHandle("# new generation 4 by process 1 (nft)\n"); ok {
		t.Error("parseNftHandle found a handle in output without an echoed rule")
	}
	for _, tt := range []struct {
		listing string
		want    bool
	}{
		{"-P INPUT ACCEPT\n", false},
		{"", false},
		{"-P INPUT DROP\n", true},
		{"-P INPUT ACCEPT\n-A INPUT -j ufw-before-input\n", true},
	} {
		if got := iptablesChainInUse(tt.listing); got != tt.want {
			t.Errorf("iptablesChainInUse(%q) = %v, want %v", tt.listing, got, tt.want)
		}
	}
	status := "Name:\tx\nCapEff:\t0000000000001000\n"
	if !hasCapText(status, 12) || hasCapText(status, 13) || hasCapText("CapEff:\tzz\n", 12) {
		t.Error("CapEff parsing is wrong")
	}
}

func FuzzFindNftRule(f *testing.F) {
	f.Add(chainWith5005, 5005)
	f.Add(emptyChain, 1)
	f.Add(echo7, 5005)
	f.Add("tcp dport 1 accept # handle -1", 1)
	f.Fuzz(func(t *testing.T, listing string, port int) {
		if r, ok := findNftRule(listing, "tcp", port); ok {
			if r.Handle <= 0 || !strings.HasPrefix(r.Text, "tcp dport ") {
				t.Fatalf("findNftRule returned %+v", r)
			}
		}
		if h, ok := parseNftHandle(listing); ok && h <= 0 {
			t.Fatalf("parseNftHandle returned handle %d", h)
		}
		iptablesChainInUse(listing)
	})
}
