package kdsrvcli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"kdsrv/internal/discovery"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
)

// clientForm turns a -QR line into the server=@{...} a client would type:
// server=HOST after the protocol, and a real password for Password=*.
func clientForm(line, host, password string) string {
	proto, rest, _ := strings.Cut(line, ":")
	rest = strings.ReplaceAll(rest, "Password=*", "Password="+password)
	if proto == string(spec.COM) {
		return proto + ":" + rest
	}
	return proto + ":server=" + host + "," + rest
}

func TestDiscoveryLines(t *testing.T) {
	tcp := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	type tr struct {
		t       string   // -t value
		display string   // the listener's display form
		addr    net.Addr // the listener's address
	}
	tests := []struct {
		name     string
		ts       []tr
		elevated bool
		want     []string
		notices  []string
	}{
		{
			name: "range shows the port used and the end; hidden is left out",
			ts: []tr{
				{"tcp:port=51:60", "tcp:port=53:60", tcp(53)},
				{"tcp:port=7000,hidden", "tcp:port=7000", tcp(7000)},
			},
			elevated: true,
			want:     []string{"tcp:Port=53:60"},
		},
		{
			name:     "range whose last port was used",
			ts:       []tr{{"tcp:port=51:60", "tcp:port=60:60", tcp(60)}},
			elevated: true,
			want:     []string{"tcp:Port=60"},
		},
		{
			name: "password shown as a star, ipversion kept",
			ts: []tr{
				{"tcp:port=5000,password=Sekr1t", "tcp:port=5000", tcp(5000)},
				{"tcp:port=5001,ipversion=6", "tcp:port=5001,ipversion=6", &net.TCPAddr{IP: net.IPv6loopback, Port: 5001}},
			},
			elevated: true,
			want:     []string{"tcp:Port=5000,Password=*", "tcp:Port=5001,Ipversion=6"},
		},
		{
			name: "npipe with the pipe actually used",
			ts: []tr{
				{"npipe:pipe=kd_%d,password=Sekr1t", "npipe:pipe=kd_812", &net.UnixAddr{Name: "/run/kd_812", Net: "unix"}},
				{"npipe:pipe=KernelPipe", "", nil}, // no display: from the -t value
			},
			elevated: true,
			want:     []string{"npipe:Pipe=kd_812,Password=*", "npipe:Pipe=KernelPipe"},
		},
		{
			name: "ssl and spipe hide the certificate",
			ts: []tr{
				{"ssl:proto=tls1,certuser=My Cert,port=5001", "ssl:proto=tls1,certuser=My Cert,port=5001", tcp(5001)},
				{"spipe:proto=tls1,machuser=Srv,pipe=P,password=Sekr1t", "spipe:proto=tls1,machuser=Srv,pipe=P", nil},
			},
			elevated: true,
			want:     []string{"ssl:Proto=tls1,Port=5001", "spipe:Proto=tls1,Pipe=P,Password=*"},
		},
		{
			name:     "com",
			ts:       []tr{{"com:port=com2,baud=115200,channel=0", "com:port=COM2,baud=115200,channel=0", nil}},
			elevated: true,
			want:     []string{"com:Port=COM2,Baud=115200,Channel=0"},
		},
		{
			name:     "clicon is never listed",
			ts:       []tr{{"tcp:port=5000,clicon=client1", "tcp:port=5000,clicon=client1", nil}},
			elevated: true,
		},
		{
			name: "not elevated: nothing listed, one notice",
			ts: []tr{
				{"tcp:port=5000", "tcp:port=5000", tcp(5000)},
				{"tcp:port=5002", "tcp:port=5002", tcp(5002)},
			},
			notices: []string{"not discoverable by -QR: " + notElevatedNotice()},
		},
		{
			name: "not elevated but nothing would be listed anyway: no notice",
			ts:   []tr{{"tcp:port=5000,hidden", "tcp:port=5000", tcp(5000)}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ts []*spec.Transport
			var displays []string
			var addrs []net.Addr
			for _, x := range tc.ts {
				p, err := spec.ParseServerTransport(x.t)
				if err != nil {
					t.Fatalf("-t %s: %v", x.t, err)
				}
				ts = append(ts, p)
				displays = append(displays, x.display)
				addrs = append(addrs, x.addr)
			}
			lines, notices := discoveryLines(ts, displays, addrs, tc.elevated)
			if d := cmp.Diff(tc.want, lines); d != "" {
				t.Errorf("lines (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.notices, notices); d != "" {
				t.Errorf("notices (-want +got):\n%s", d)
			}
			for _, l := range lines {
				if strings.Contains(l, "Sekr1t") {
					t.Errorf("line %q shows the password", l)
				}
				// What -QR shows must be accepted back as a client's server=@{...}.
				form := clientForm(l, "build7", "Sekr1t")
				c, err := spec.ParseClientTransport(form)
				if err != nil {
					t.Errorf("line %q: a client cannot use it: %s: %v", l, form, err)
					continue
				}
				if strings.Contains(l, "Password=*") != (c.Password != "") {
					t.Errorf("line %q: password lost in %s", l, form)
				}
			}
		})
	}
}

// notElevatedNotice is the reason discovery gives for a server that is not
// elevated on this platform.
func notElevatedNotice() string {
	_, reason := discovery.Discoverable(false, false, false)
	return strings.TrimPrefix(reason, "not discoverable by -QR: ")
}

// runMain starts Main in the background and waits until it listens. stop
// cancels it and returns its exit code.
func runMain(t *testing.T, isElevated bool, args ...string) (stdout, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	e := defaultEnv()
	e.elevated = func() bool { return isElevated }
	go func() { code <- run(ctx, args, stdout, stderr, e) }()
	var once sync.Once
	result := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case result = <-code:
			case <-time.After(20 * time.Second):
				t.Errorf("kdsrv did not stop within 20s")
			}
		})
		return result
	}
	t.Cleanup(func() { stop() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kdsrv stderr:\n%s", stderr)
		}
	})
	exited := -1
	// A password on -t costs a key derivation before kdsrv listens: slow
	// under -race on a loaded machine.
	testkit.WaitWithin(t, time.Minute, "kdsrv to listen", func() bool {
		select {
		case exited = <-code:
			return true
		default:
			return strings.Contains(stdout.String(), "listening on")
		}
	})
	if exited >= 0 {
		code <- exited // for stop
		t.Fatalf("kdsrv exited with %d", exited)
	}
	return stdout, stderr, stop
}

func TestMainDiscovery(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, isElevated := range []bool{true, false} {
		t.Run("elevated="+strconv.FormatBool(isElevated), func(t *testing.T) {
			reg := t.TempDir()
			port := testkit.FreeUDPPort(t)
			_, stderr, stop := runMain(t, isElevated, "-t", "tcp:port=20000:29999", "-t", "tcp:port=30000:39999,password=Sekr1t",
				"-t", "tcp:port=40000:49999,hidden", "-bind", "127.0.0.1",
				"-registry", reg, "-qr-port", strconv.Itoa(port), "-no-mdns")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := discovery.Query(ctx, "127.0.0.1", discovery.QueryOptions{Port: port, Timeout: time.Second})
			notice := `msg="not discoverable by -QR: ` + notElevatedNotice() + `"`
			if isElevated {
				if err != nil {
					t.Fatalf("query: %v\nkdsrv stderr:\n%s", err, stderr)
				}
				if len(res.Lines) != 2 || !strings.HasPrefix(res.Lines[0], "tcp:Port=2") || !strings.HasSuffix(res.Lines[0], ":29999") ||
					!strings.HasPrefix(res.Lines[1], "tcp:Port=3") || !strings.HasSuffix(res.Lines[1], ":39999,Password=*") {
					t.Errorf("query lines = %q, want the two unhidden ranges, the second with Password=*", res.Lines)
				}
				if strings.Contains(stderr.String(), notice) {
					t.Errorf("elevated server printed %q", notice)
				}
			} else {
				if err == nil {
					t.Errorf("a non-elevated server answered -QR: %q", res.Lines)
				}
				if !strings.Contains(stderr.String(), notice) {
					t.Errorf("stderr = %q, want the notice %q", stderr, notice)
				}
				if n := strings.Count(stderr.String(), "not discoverable"); n != 1 {
					t.Errorf("the notice is printed %d times, want once:\n%s", n, stderr)
				}
			}
			entries, _ := filepath.Glob(filepath.Join(reg, "*.json"))
			if isElevated && len(entries) != 1 || !isElevated && len(entries) != 0 {
				t.Errorf("registry holds %q while running", entries)
			}
			for _, e := range entries {
				if b, _ := os.ReadFile(e); strings.Contains(string(b), "Sekr1t") {
					t.Errorf("registry entry %s holds the password: %s", e, b)
				}
			}
			if strings.Contains(stderr.String(), "Sekr1t") {
				t.Errorf("stderr shows the password:\n%s", stderr)
			}
			if code := stop(); code != 0 {
				t.Errorf("kdsrv exit code %d, want 0\n%s", code, stderr)
			}
			if entries, _ := filepath.Glob(filepath.Join(reg, "*")); len(entries) != 0 {
				t.Errorf("registry holds %q after exit", entries)
			}
		})
	}
}

func TestMainBadQRPort(t *testing.T) {
	e := defaultEnv()
	e.elevated = func() bool { return true }
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := run(ctx, []string{"-t", "tcp:port=20000:29999", "-bind", "127.0.0.1", "-registry", t.TempDir(), "-qr-port", "70000", "-no-mdns"}, &stdout, &stderr, e)
	if code != 1 || !strings.Contains(stderr.String(), "-qr-port 70000 is not a UDP port") {
		t.Errorf("exit %d, stderr %q; want 1 and a message about -qr-port", code, stderr.String())
	}
}

func TestAnnounceInterfaces(t *testing.T) {
	for _, tc := range []struct {
		bind     string
		wantSkip string // substring; "" = announce
	}{
		{"", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"127.0.0.1", "loopback only"},
		{"::1", "loopback only"},
		{"192.0.2.55", "no network interface holds"}, // TEST-NET-1, on no interface
	} {
		names, skip := announceInterfaces(tc.bind)
		if tc.wantSkip == "" && (skip != "" || names != nil) || tc.wantSkip != "" && !strings.Contains(skip, tc.wantSkip) {
			t.Errorf("-bind %q: interfaces %q, skip %q; want skip containing %q", tc.bind, names, skip, tc.wantSkip)
		}
	}
	// An address of a real interface selects that interface.
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			names, skip := announceInterfaces(ipn.IP.String())
			if skip != "" || !slices.Contains(names, ifi.Name) {
				t.Errorf("-bind %s: interfaces %q, skip %q; want %s", ipn.IP, names, skip, ifi.Name)
			}
			return
		}
	}
	t.Log("no non-loopback address on this machine: interface selection not exercised")
}

// lockedBuffer is the shared concurrency-safe buffer of the tests.
type lockedBuffer = testkit.Buffer
