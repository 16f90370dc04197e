package firewall

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netns creates a network namespace for the test and deletes it in
// t.Cleanup, or skips the test saying exactly what is missing.
func netns(t *testing.T, tools ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to create a network namespace (running as uid %d)", os.Geteuid())
	}
	pkg := map[string]string{"ip": "iproute2", "nft": "nftables", "iptables": "iptables"}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH (package %s): %v", tool, pkg[tool], err)
		}
	}
	var b [4]byte
	rand.Read(b[:])
	name := "kdsrv-fw-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespace %s here (a container without CAP_SYS_ADMIN?): %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	return name
}

// inNetns runs argv inside ns and returns its output.
func inNetns(t *testing.T, ns string, argv ...string) string {
	t.Helper()
	out, err := ExecRunner{Netns: ns}.Run(context.Background(), argv)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

// runShell runs a command line the way a user pasting it would.
func runShell(t *testing.T, line string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("running %s: %v: %s", line, err, out)
	}
}

func TestIntegrationNftablesInNetns(t *testing.T) {
	ns := netns(t, "nft")
	f := &Firewall{Runner: ExecRunner{Netns: ns}}
	ctx := context.Background()
	req := Request{Proto: "tcp", Port: 5005, Comment: "kdsrv tcp:port=5005,password=hunter2"}
	const want = `tcp dport 5005 accept comment "kdsrv tcp:port=5005,password=*"`

	res, err := f.Open(ctx, req)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if res.Backend != BackendNftables || res.Existing || !strings.HasPrefix(res.Remove, "ip netns exec "+ns+" nft delete rule inet kdsrv input handle ") {
		t.Fatalf("Open = %+v; want a new nftables rule with a removal command by handle", res)
	}
	ruleset := inNetns(t, ns, "nft", "list", "ruleset")
	if strings.Count(ruleset, want) != 1 || strings.Contains(ruleset, "hunter2") {
		t.Fatalf("nft list ruleset after Open:\n%s\nwant exactly one %s and no password", ruleset, want)
	}
	if !strings.Contains(ruleset, "type filter hook input priority filter; policy accept;") {
		t.Errorf("chain input is not an accepting input hook:\n%s", ruleset)
	}

	again, err := f.Open(ctx, req)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if !again.Existing || again.Remove != res.Remove {
		t.Errorf("second Open = %+v; want the existing rule (%s)", again, res.Remove)
	}
	if n := strings.Count(inNetns(t, ns, "nft", "list", "ruleset"), "tcp dport 5005 accept"); n != 1 {
		t.Errorf("%d rules for port 5005 after a second Open, want 1", n)
	}

	other, err := f.Open(ctx, Request{Proto: "tcp", Port: 6006})
	if err != nil || other.Existing {
		t.Fatalf("Open for another port = %+v, %v", other, err)
	}

	runShell(t, res.Remove)
	ruleset = inNetns(t, ns, "nft", "list", "ruleset")
	if strings.Contains(ruleset, "dport 5005") || !strings.Contains(ruleset, "dport 6006") {
		t.Errorf("after running %q the ruleset is:\n%s\nwant only the 6006 rule left", res.Remove, ruleset)
	}
}

func TestIntegrationIptablesInNetns(t *testing.T) {
	ns := netns(t, "iptables")
	f := &Firewall{Runner: ExecRunner{Netns: ns}, Backend: BackendIptables}
	ctx := context.Background()
	res, err := f.Open(ctx, Request{Proto: "tcp", Port: 5005})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	listing := inNetns(t, ns, "iptables", "-w", "-S", "INPUT")
	if !strings.Contains(listing, "--dport 5005") || !strings.Contains(listing, "-j ACCEPT") {
		t.Fatalf("iptables -S INPUT after Open:\n%s", listing)
	}
	again, err := f.Open(ctx, Request{Proto: "tcp", Port: 5005})
	if err != nil || !again.Existing {
		t.Fatalf("second Open = %+v, %v; want the existing rule", again, err)
	}
	runShell(t, res.Remove)
	if listing := inNetns(t, ns, "iptables", "-w", "-S", "INPUT"); strings.Contains(listing, "--dport 5005") {
		t.Errorf("rule still present after %q:\n%s", res.Remove, listing)
	}
}
