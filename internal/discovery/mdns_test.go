package discovery

import (
	"context"
	"kdsrv/internal/testkit"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDNSRoundTrip(t *testing.T) {
	t.Parallel()
	m := &dnsMsg{
		ID: 7, Flags: dnsFlagResponse | dnsFlagAuth,
		Questions: []dnsQuestion{{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN | dnsClassTop}},
		NAnswer:   1,
		Answers: []dnsRR{
			{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN, TTL: 120, Target: `kdsrv on a\.b (pid 1)._kdsrv._tcp.local.`},
			{Name: "x._kdsrv._tcp.local.", Type: dnsTypeSRV, Class: dnsClassIN | dnsClassTop, TTL: 120, Port: 53, Target: "h.local."},
			{Name: "x._kdsrv._tcp.local.", Type: dnsTypeTXT, Class: dnsClassIN, TTL: 120, Text: []string{"txtvers=1", "t0=tcp:Port=53:60"}},
			{Name: "h.local.", Type: dnsTypeA, Class: dnsClassIN, TTL: 120, Addr: netip.MustParseAddr("127.0.0.1")},
			{Name: "h.local.", Type: dnsTypeAAAA, Class: dnsClassIN, TTL: 120, Addr: netip.MustParseAddr("::1")},
		},
	}
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeDNS(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if instanceLabel(got.Answers[0].Target) != "kdsrv on a.b (pid 1)" {
		t.Fatalf("instanceLabel = %q", instanceLabel(got.Answers[0].Target))
	}
}

func TestDNSCompressionAndLoops(t *testing.T) {
	t.Parallel()
	// Header with 1 question, 1 answer: question "_kdsrv._tcp.local." PTR;
	// answer name is a pointer to offset 12, target "a" + pointer to 12.
	msg := []byte{0, 0, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0}
	msg = append(msg, 6, '_', 'k', 'd', 's', 'r', 'v', 4, '_', 't', 'c', 'p', 5, 'l', 'o', 'c', 'a', 'l', 0, 0, 12, 0, 1)
	msg = append(msg, 0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 120, 0, 4, 1, 'a', 0xC0, 12)
	m, err := decodeDNS(msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Answers[0].Name != serviceName || m.Answers[0].Target != "a."+serviceName {
		t.Fatalf("decoded %+v", m.Answers[0])
	}
	bad := map[string][]byte{
		"self pointer":  append([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xC0, 12, 0, 12, 0, 1),
		"forward ptr":   append([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xC0, 14, 0, 0, 12, 0, 1),
		"short":         {0, 0, 0},
		"huge counts":   {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"label too far": append([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 9, 'a', 0, 0, 12, 0, 1),
	}
	for name, b := range bad {
		if _, err := decodeDNS(b); err == nil {
			t.Errorf("%s: decodeDNS succeeded", name)
		}
	}
}

func TestTxtLines(t *testing.T) {
	t.Parallel()
	got := txtLines([]string{"txtvers=1", "t1=npipe:Pipe=P", "t0=tcp:Port=1", "tx=bad", "t99=tcp:Port=2", "t2=bad\x01"})
	want := []string{"tcp:Port=1", "npipe:Pipe=P"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

// TestAnnounceBrowseUnicast exercises the DNS-SD records and the legacy
// unicast path over loopback (no multicast needed).
func TestAnnounceBrowseUnicast(t *testing.T) {
	t.Parallel()
	addr := freeUDPPort(t)
	lines := []string{"tcp:Port=53:60", "npipe:Pipe=KernelPipe,Password=*"}
	stop, err := Announce(AnnounceInfo{Instance: "kdsrv on build7 (pid 1)", Host: "build7.example.org", Port: 53, Lines: lines}, AnnounceOptions{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res, err := BrowseWith(context.Background(), 1500*time.Millisecond, BrowseOptions{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	want := []BrowseResult{{
		Instance: "kdsrv on build7 (pid 1)", Host: "build7.local.", Port: 53,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Lines: lines,
	}}
	if d := cmp.Diff(want, res, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	stop()
	stop() // idempotent
}

func TestAnnouncerReplies(t *testing.T) {
	t.Parallel()
	a, err := newAnnouncer(AnnounceInfo{Instance: "i", Host: "h", Port: 9, Lines: []string{"tcp:Port=9"}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.7")}
	query := func(name string, typ uint16, class uint16) []byte {
		b, err := (&dnsMsg{ID: 5, Questions: []dnsQuestion{{Name: name, Type: typ, Class: class}}}).encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name      string
		pkt       []byte
		legacy    bool
		answers   int
		unicast   bool
		wantReply bool
	}{
		{"service PTR", query(serviceName, dnsTypePTR, dnsClassIN), false, 1, false, true},
		{"service PTR QU", query(serviceName, dnsTypePTR, dnsClassIN|dnsClassTop), false, 1, true, true},
		{"legacy", query(serviceName, dnsTypePTR, dnsClassIN), true, 1, true, true},
		{"meta", query(servicesMeta, dnsTypePTR, dnsClassIN), false, 1, false, true},
		{"instance ANY", query("i."+serviceName, dnsTypeANY, dnsClassIN), false, 2, false, true},
		{"host A", query("H.local.", dnsTypeA, dnsClassIN), false, 1, false, true},
		{"other service", query("_http._tcp.local.", dnsTypePTR, dnsClassIN), false, 0, false, false},
		{"garbage", []byte{1, 2, 3}, false, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, unicast := a.reply(tc.pkt, addrs, tc.legacy)
			if (out != nil) != tc.wantReply {
				t.Fatalf("reply = %v, want reply %v", out, tc.wantReply)
			}
			if out == nil {
				return
			}
			m, err := decodeDNS(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.NAnswer != tc.answers || unicast != tc.unicast {
				t.Fatalf("answers %d unicast %v, want %d %v", m.NAnswer, unicast, tc.answers, tc.unicast)
			}
			if tc.legacy && (m.ID != 5 || len(m.Questions) != 1 || m.Answers[0].TTL > mdnsLegacyTTL) {
				t.Fatalf("legacy reply must echo id and question and cap TTLs: %+v", m)
			}
		})
	}
}

// netnsEnv marks the child test process that runs inside a private network
// namespace.
const netnsEnv = "KDSRV_DISCOVERY_IN_NETNS"

// TestMDNSMulticast announces and browses over real multicast. Multicast
// must not reach the machine's real network, so the test re-runs itself
// inside a network namespace it creates (root and ip(8) needed) whose only
// interface is a multicast-enabled loopback.
func TestMDNSMulticast(t *testing.T) {
	if os.Getenv(netnsEnv) == "1" {
		mdnsMulticastInNamespace(t)
		return
	}
	nsExec := testkit.MulticastNetns(t, "kdsrvdisc")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(nsExec[1:], os.Args[0], "-test.run", "^TestMDNSMulticast$", "-test.v", "-test.count=1")
	cmd := exec.CommandContext(ctx, nsExec[0], args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("namespace run:\n%s", out)
	if err != nil {
		t.Fatalf("multicast test inside the namespace failed: %v", err)
	}
}

func mdnsMulticastInNamespace(t *testing.T) {
	ifs, err := mdnsInterfaces(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Safety: only ever multicast inside the private namespace.
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("expected only the namespace's loopback, got %v", ifs)
	}
	// An observer on the group sees the unsolicited announcements and goodbyes.
	obs, err := net.ListenMulticastUDP("udp4", &ifs[0], mdnsGroup)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	stop1, err := Announce(AnnounceInfo{Instance: "kdsrv one", Host: "nshost", Port: 53, Lines: []string{"tcp:Port=53:60"}}, AnnounceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop1()
	stop2, err := Announce(AnnounceInfo{Instance: "kdsrv two", Host: "nshost", Lines: []string{"npipe:Pipe=KernelPipe,Password=*"}}, AnnounceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	res, err := Browse(context.Background(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []BrowseResult{
		{Instance: "kdsrv one", Host: "nshost.local.", Port: 53, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, Lines: []string{"tcp:Port=53:60"}},
		{Instance: "kdsrv two", Host: "nshost.local.", Port: 0, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, Lines: []string{"npipe:Pipe=KernelPipe,Password=*"}},
	}
	if d := cmp.Diff(want, res, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("browse (-want +got):\n%s", d)
	}
	stop1()
	res, err = Browse(context.Background(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Instance != "kdsrv two" {
		t.Fatalf("after stopping one announcer: %+v", res)
	}
	// The observer must have seen "kdsrv one" announced and then withdrawn.
	var announced, goodbye bool
	_ = obs.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, dnsMaxMsg)
	for i := 0; i < 100 && !goodbye; i++ {
		n, _, err := obs.ReadFromUDP(buf)
		if err != nil {
			break
		}
		m, err := decodeDNS(buf[:n])
		if err != nil || m.Flags&dnsFlagResponse == 0 || m.ID != 0 {
			continue
		}
		for _, rr := range m.Answers {
			if rr.Type == dnsTypePTR && instanceLabel(rr.Target) == "kdsrv one" {
				if rr.TTL > 0 {
					announced = true
				} else if announced {
					goodbye = true
				}
			}
		}
	}
	if !announced || !goodbye {
		t.Fatalf("observer saw announcement %v, goodbye %v; want both", announced, goodbye)
	}
}
