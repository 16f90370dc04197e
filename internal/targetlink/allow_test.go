package targetlink

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// admits is one expectation: trans= value → admitted, or refused with a
// suggested pattern (and glob, if not empty).
type admits struct {
	trans   string
	ok      bool
	suggest string // the exact pattern the refusal suggests
	glob    string // the broader glob it suggests ("" = not checked)
}

// checkAdmits runs the expectations against a.
func checkAdmits(t *testing.T, a *AllowList, cases []admits) {
	t.Helper()
	for _, c := range cases {
		err := a.Check(target(t, c.trans))
		if c.ok {
			if err != nil {
				t.Errorf("%v: Check(%s) = %v, want admitted", a.Patterns(), c.trans, err)
			}
			continue
		}
		var na *NotAllowedError
		if !errors.As(err, &na) {
			t.Errorf("%v: Check(%s) = %v, want *NotAllowedError", a.Patterns(), c.trans, err)
			continue
		}
		if na.Suggest != c.suggest {
			t.Errorf("Check(%s): Suggest = %q, want %q", c.trans, na.Suggest, c.suggest)
		}
		if c.glob != "" && na.Glob != c.glob {
			t.Errorf("Check(%s): Glob = %q, want %q", c.trans, na.Glob, c.glob)
		}
		msg := err.Error()
		if na.Resolved != "" {
			// The client's message never says where a link leads; the
			// operator's Detail does.
			if strings.Contains(msg, na.Resolved) {
				t.Errorf("Check(%s): message %q reveals the resolved path %q", c.trans, msg, na.Resolved)
			}
			msg = na.Detail()
		}
		if want := "-allow " + shellQuote(c.suggest); !strings.Contains(msg, want) {
			t.Errorf("Check(%s): message %q lacks %q", c.trans, msg, want)
		}
	}
}

func TestDefaultAllowLinux(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", nil, true)
	checkAdmits(t, a, []admits{
		{"com:port=/dev/ttyS0,baud=115200", true, "", ""},
		{"com:port=/dev/ttyUSB3,baud=115200", true, "", ""},
		{"com:port=/dev/ttyACM0,baud=9600", true, "", ""},
		{"com:port=COM2,baud=115200", true, "", ""}, // /dev/ttyS1
		{"com:port=/dev/./ttyS0,baud=115200", true, "", ""},
		{"com:pipe,port=/tmp/x.sock", false, "/tmp/x.sock", "/tmp/*.sock"},
		{"com:pipe,port=/dev/ttyS0", false, "/dev/ttyS0", "/dev/*"}, // defaults admit serial devices only
		{"com:port=/etc/passwd,baud=9600", false, "/etc/passwd", "/etc/*"},
		{"com:port=/dev/ttyS0/../../etc/passwd,baud=9600", false, "/etc/passwd", ""},
		{"com:port=/dev/ttyXR7,baud=9600", false, "/dev/ttyXR7", "/dev/ttyXR*"},
		{"com:ipport=5555,port=127.0.0.1", false, "127.0.0.1:5555", "127.0.0.1:*"},
		{"net:port=50000,key=1.2.3.4", false, "net:50000", "net:*"},
	})
	if got, want := a.Patterns(), defaultPatterns("linux"); !slices.Equal(got, want) {
		t.Errorf("Patterns() = %v, want %v", got, want)
	}
}

func TestDefaultAllowWindows(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "windows", nil, true)
	checkAdmits(t, a, []admits{
		{"com:port=COM2,baud=115200", true, "", ""},
		{`com:port=\\.\COM12,baud=115200`, true, "", ""},
		{"com:port=com7,baud=115200", true, "", ""},
		{`com:port=\\.\CNCA0,baud=115200`, false, `\\.\CNCA0`, `\\.\CNCA*`},
		{`com:pipe,port=\\.\pipe\vm1`, false, `\\.\pipe\vm1`, `\\.\pipe\*`},
		{"com:ipport=5555,port=127.0.0.1", false, "127.0.0.1:5555", ""},
	})
	b := mustAllowOn(t, "windows", []string{`\\.\pipe\vm*`, `\\.\CNCA*`}, false)
	checkAdmits(t, b, []admits{
		{`com:pipe,port=\\.\pipe\vm1`, true, "", ""},
		{`com:pipe,port=\\.\PIPE\VM2`, true, "", ""}, // case-insensitive
		{`com:pipe,port=\\.\pipe\other`, false, `\\.\pipe\other`, `\\.\pipe\*`},
		{`com:port=\\.\cnca3,baud=9600`, true, "", ""},
		{"com:port=COM2,baud=115200", false, "COM2", "COM*"},
	})
	// ".." in a Windows pipe path is refused before matching: Win32 would fold it.
	if err := b.Check(target(t, `com:pipe,port=\\.\pipe\vm1\..\..\x`)); err == nil || !strings.Contains(err.Error(), `".."`) {
		t.Errorf(`Check(\\.\pipe\vm1\..\..\x) = %v, want a ".." error`, err)
	}
	// A unix socket path means nothing on Windows.
	if err := b.Check(target(t, "com:pipe,port=/tmp/x.sock")); err == nil || !strings.Contains(err.Error(), `\\.\pipe\Name`) {
		t.Errorf("Check(/tmp/x.sock) on windows = %v, want a hint at \\\\.\\pipe\\Name", err)
	}
}

func TestDefaultAllowDarwin(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "darwin", nil, true)
	checkAdmits(t, a, []admits{
		{"com:port=/dev/cu.usbserial-1420,baud=115200", true, "", ""},
		{"com:port=/dev/tty.usbserial-1420,baud=115200", false, "/dev/tty.usbserial-1420", "/dev/tty.usbserial-*"},
	})
	if err := a.Check(target(t, "com:port=COM1,baud=9600")); err == nil || !strings.Contains(err.Error(), "/dev/cu.") {
		t.Errorf("Check(COM1) on darwin = %v, want an error pointing at /dev/cu.*", err)
	}
	if _, err := newAllowList([]string{"COM1"}, false, "darwin", nil); err == nil {
		t.Error("COM1 pattern on darwin accepted, want an error")
	}
}

func TestDefaultAllowPublic(t *testing.T) {
	t.Parallel()
	if got := DefaultAllow().Patterns(); !slices.Equal(got, DefaultPatterns()) || len(got) == 0 {
		t.Errorf("DefaultAllow().Patterns() = %v, want %v", got, DefaultPatterns())
	}
	want := "/dev/ttyS*"
	if runtime.GOOS == "windows" {
		want = "COM*"
	}
	if !slices.Contains(DefaultPatterns(), want) {
		t.Errorf("DefaultPatterns() = %v lacks %q", DefaultPatterns(), want)
	}
}

// TestAllowPathsAndSymlinks builds a directory with sockets, escapes and
// symbolic links and checks that only what the glob names is admitted.
func TestAllowPathsAndSymlinks(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("unix paths")
	}
	dir := t.TempDir()
	vm := filepath.Join(dir, "vm")
	mustMkdir(t, vm)
	mustWrite(t, filepath.Join(dir, "x.sock"))
	mustWrite(t, filepath.Join(vm, "real.sock"))
	mustSymlink(t, filepath.Join(dir, "x.sock"), filepath.Join(vm, "evil.sock"))        // points outside
	mustSymlink(t, "real.sock", filepath.Join(vm, "good.sock"))                         // stays inside (relative)
	mustSymlink(t, "/etc/passwd", filepath.Join(vm, "dangling.sock"))                   // exists, outside
	mustSymlink(t, filepath.Join(dir, "nowhere.sock"), filepath.Join(vm, "ghost.sock")) // dangling, outside
	mustSymlink(t, vm, filepath.Join(dir, "alias"))                                     // a directory link

	a := mustAllow(t, []string{vm + "/*.sock", dir + "/alias/*.sock"}, true)
	checkAdmits(t, a, []admits{
		{"com:pipe,port=" + vm + "/a.sock", true, "", ""},           // does not exist yet
		{"com:pipe,port=" + vm + "/real.sock", true, "", ""},        // exists
		{"com:pipe,port=" + vm + "/good.sock", true, "", ""},        // link inside
		{"com:pipe,port=" + vm + "//./real.sock", true, "", ""},     // odd spelling
		{"com:pipe,port=" + dir + "/alias/real.sock", true, "", ""}, // through the directory link
		{"com:pipe,port=" + vm + "/../x.sock", false, dir + "/x.sock", dir + "/*.sock"},
		{"com:pipe,port=" + vm + "/sub/../../x.sock", false, dir + "/x.sock", ""},
		{"com:pipe,port=" + vm + "/evil.sock", false, dir + "/x.sock", dir + "/*.sock"},
		{"com:pipe,port=" + vm + "/dangling.sock", false, "/etc/passwd", ""},
		{"com:pipe,port=" + vm + "/ghost.sock", false, dir + "/nowhere.sock", ""},
		{"com:pipe,port=" + vm + "/real.txt", false, vm + "/real.txt", vm + "/*.txt"},
		{"com:pipe,port=" + vm + "/sub/a.sock", false, vm + "/sub/a.sock", ""}, // * stays in one element
	})
	// The refusal of a symlink says where it leads.
	err := a.Check(target(t, "com:pipe,port="+vm+"/evil.sock"))
	var na *NotAllowedError
	if !errors.As(err, &na) || na.Resolved != filepath.Join(dir, "x.sock") || !strings.Contains(err.Error(), "symbolic link") ||
		strings.Contains(err.Error(), "x.sock") || !strings.Contains(na.Detail(), filepath.Join(dir, "x.sock")) {
		t.Errorf("Check(evil.sock) = %v, want a refusal that names the link target in Detail only", err)
	}
	// A link in an unrelated directory that points into the allowed one is
	// refused for its own name, not for where it leads.
	mustSymlink(t, filepath.Join(vm, "real.sock"), filepath.Join(dir, "in.sock"))
	err = a.Check(target(t, "com:pipe,port="+dir+"/in.sock"))
	if !errors.As(err, &na) || na.Suggest != dir+"/in.sock" || na.Resolved != "" {
		t.Errorf("Check(in.sock) = %#v, want a refusal of the given name only", err)
	}
	// Both names refused: both patterns are suggested.
	b := mustAllow(t, nil, false)
	err = b.Check(target(t, "com:pipe,port="+vm+"/evil.sock"))
	if !errors.As(err, &na) || len(na.Patterns) != 2 || !strings.Contains(na.Detail(), "-allow '"+vm+"/evil.sock' -allow '"+dir+"/x.sock'") {
		t.Errorf("Check(evil.sock) without patterns = %v, want both names suggested in Detail", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "-allow '"+vm+"/evil.sock'") || strings.Contains(msg, "x.sock") {
		t.Errorf("Check(evil.sock) without patterns: client message %q should suggest the given name only", msg)
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, oldname, newname string) {
	t.Helper()
	if err := os.Symlink(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", []string{"127.0.0.1:5555", "localhost:6000-6001", "[::1]:*", "10.0.0.*:5555-5560", "VMHost:7000", "*:9999"}, false)
	a.lookup = fakeDNS(map[string][]string{"localhost": {"127.0.0.1"}, "vmhost2": {"192.0.2.50"}})
	checkAdmits(t, a, []admits{
		{"com:ipport=5555,port=127.0.0.1", true, "", ""},
		{"com:ipport=5556,port=127.0.0.1", false, "127.0.0.1:5556", "127.0.0.1:*"},
		{"com:ipport=6000,port=localhost", true, "", ""},
		{"com:ipport=6001,port=127.0.0.1", true, "", ""}, // localhost pattern admits 127.0.0.1
		{"com:ipport=6001,port=[::1]", true, "", ""},
		{"com:ipport=6002,port=localhost", false, "localhost:6002", "localhost:*"},
		{"com:ipport=5555,port=localhost", true, "", ""}, // the name resolves to 127.0.0.1, which the IP pattern admits
		{"com:ipport=1,port=::1", true, "", ""},
		{"com:ipport=1,port=[0:0::1]", true, "", ""}, // canonical IPv6
		{"com:ipport=1,port=::2", false, "[::2]:1", "[::2]:*"},
		{"com:ipport=5560,port=10.0.0.7", true, "", ""},
		{"com:ipport=5561,port=10.0.0.7", false, "10.0.0.7:5561", ""},
		{"com:ipport=5555,port=10.0.1.7", false, "10.0.1.7:5555", ""},
		{"com:ipport=7000,port=vmhost", true, "", ""},
		{`com:ipport=7000,port=\\VMHOST`, true, "", ""},
		{"com:ipport=7000,port=vmhost2", false, "vmhost2:7000", ""},
		{"com:ipport=9999,port=anything.example", true, "", ""},
		{"com:pipe,port=/tmp/x.sock", false, "/tmp/x.sock", ""},
		{"net:port=5555,key=1.2.3.4", false, "net:5555", ""},
	})
}

func TestAllowNet(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", []string{"net:50000", "NET:50010-50039"}, false)
	checkAdmits(t, a, []admits{
		{"net:port=50000,key=1.2.3.4", true, "", ""},
		{"net:port=50001,key=1.2.3.4", false, "net:50001", "net:*"},
		{"net:port=50010,key=1.2.3.4", true, "", ""},
		{"net:port=50039,key=1.2.3.4,target=192.0.2.1", true, "", ""},
		{"net:port=50040,key=1.2.3.4", false, "net:50040", ""},
		{"com:ipport=50000,port=127.0.0.1", false, "127.0.0.1:50000", ""},
	})
	b := mustAllowOn(t, "linux", []string{"net:*"}, false)
	checkAdmits(t, b, []admits{{"net:port=1,key=1.2.3.4", true, "", ""}, {"net:port=65535,key=1.2.3.4", true, "", ""}})
	// The key never shows in a refusal.
	err := a.Check(target(t, "net:port=1,key=9.8.7.6"))
	if err == nil || strings.Contains(err.Error(), "9.8.7.6") {
		t.Errorf("refusal %v shows the KDNET key or is missing", err)
	}
}

func TestAllowCOMPatternUnix(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", []string{"COM3", "com4"}, false)
	checkAdmits(t, a, []admits{
		{"com:port=COM3,baud=9600", true, "", ""},
		{"com:port=/dev/ttyS2,baud=9600", true, "", ""},
		{"com:port=/dev/ttyS3,baud=9600", true, "", ""},
		{"com:port=COM1,baud=9600", false, "/dev/ttyS0", "/dev/ttyS*"},
	})
	if !slices.Equal(a.Patterns(), []string{"COM3", "com4"}) {
		t.Errorf("Patterns() = %v, want as given", a.Patterns())
	}
}

func TestInvalidPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		goos, pattern, frag string
	}{
		{"linux", "", "empty"},
		{"linux", "   ", "empty"},
		{"linux", "relative/x.sock", "absolute"},
		{"linux", "/run/**/x.sock", `"**"`},
		{"linux", "/run/[vm/x.sock", "wildcard"},
		{"linux", "COM*", "/dev/ttyS*"},
		{"linux", "COMX", "not a COM port"},
		{"linux", "127.0.0.1", "HOST:PORT"},
		{"linux", "127.0.0.1:0", "1 to 65535"},
		{"linux", "host:65536", "1 to 65535"},
		{"linux", "host:x", "not a number"},
		{"linux", "host:+5", "not a number"},
		{"linux", "host:9-3", "backwards"},
		{"linux", ":5555", "host is empty"},
		{"linux", "net:", "not a number"},
		{"linux", "net:abc", "not a number"},
		{"linux", "net:1-", "not a number"},
		{"windows", "/dev/ttyS0", `\\.\pipe\Name`},
		{"windows", `\\.\pipe\[x`, "wildcard"},
		{"freebsd", "COM*", "/dev/cuau*"},
	}
	for _, tc := range tests {
		_, err := newAllowList([]string{"COM1", tc.pattern}, false, tc.goos, nil)
		if err == nil {
			t.Errorf("%s: pattern %q accepted, want an error", tc.goos, tc.pattern)
			continue
		}
		if !strings.Contains(err.Error(), quote(tc.pattern)) || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("%s: pattern %q: error %q should name the pattern and contain %q", tc.goos, tc.pattern, err, tc.frag)
		}
	}
	// The public constructor reports the same.
	if _, err := NewAllowList([]string{"/ok/*", ""}, true); err == nil {
		t.Error("NewAllowList with an empty pattern succeeded")
	}
}

func TestNotAllowedErrorMessage(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", nil, false)
	err := a.Check(target(t, "com:pipe,port=/tmp/x.sock"))
	want := `target "pipe /tmp/x.sock" is not allowed by this kdsrv; the operator can admit it with -allow '/tmp/x.sock' (or a glob such as -allow '/tmp/*.sock')`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	// Wildcard characters in a real name are escaped in the suggestion, and
	// the suggestion then admits exactly that name.
	err = a.Check(target(t, "com:pipe,port=/tmp/a*b?.sock"))
	var na *NotAllowedError
	if !errors.As(err, &na) || na.Suggest != `/tmp/a\*b\?.sock` {
		t.Fatalf("Check(/tmp/a*b?.sock) = %v, want an escaped suggestion", err)
	}
	b := mustAllowOn(t, "linux", []string{na.Suggest}, false)
	checkAdmits(t, b, []admits{
		{"com:pipe,port=/tmp/a*b?.sock", true, "", ""},
		{"com:pipe,port=/tmp/aXbY.sock", false, "/tmp/aXbY.sock", ""},
	})
}

// fakeDNS answers lookups from a table; unknown names do not resolve.
func fakeDNS(table map[string][]string) lookupFunc {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range table[host] {
			out = append(out, netip.MustParseAddr(s))
		}
		if len(out) == 0 {
			return nil, errors.New("no such host " + host)
		}
		return out, nil
	}
}

// TestAllowIPPatternsMatchAddressesOnly: an IP glob admits literal addresses
// and the resolved addresses of a name, never a name that looks like an
// address; a name is resolved once, and only admitted addresses of that
// resolution are offered for dialling.
func TestAllowIPPatternsMatchAddressesOnly(t *testing.T) {
	t.Parallel()
	a := mustAllowOn(t, "linux", []string{"10.1.2.*:5555", "db?.lab:7000", "*.lab.example:7001"}, false)
	lookups := map[string]int{}
	table := map[string][]string{
		"10.1.2.attacker.example": {"203.0.113.9"},
		"mixed.example":           {"203.0.113.9", "10.1.2.7", "::ffff:10.1.2.8"},
		"inside.example":          {"10.1.2.20"},
		"db1.lab":                 {"192.0.2.1", "192.0.2.2"},
	}
	dns := fakeDNS(table)
	a.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		lookups[host]++
		return dns(ctx, host)
	}
	checkAdmits(t, a, []admits{
		{"com:ipport=5555,port=10.1.2.3", true, "", ""},
		{"com:ipport=5555,port=10.1.2.attacker.example", false, "10.1.2.attacker.example:5555", ""},
		{"com:ipport=5556,port=10.1.2.3", false, "10.1.2.3:5556", ""},
		{"com:ipport=5555,port=10.1.3.3", false, "10.1.3.3:5555", ""},
		{"com:ipport=5555,port=inside.example", true, "", ""},
		{"com:ipport=7000,port=db1.lab", true, "", ""},
		{"com:ipport=7000,port=192.0.2.1", false, "192.0.2.1:7000", ""}, // a name pattern admits the name only
		{"com:ipport=7001,port=x.lab.example", true, "", ""},
	})
	ctx := context.Background()
	for _, tc := range []struct {
		host string
		port int
		want []string // addresses offered for dialling
	}{
		{"10.1.2.3", 5555, []string{"10.1.2.3"}},
		{"mixed.example", 5555, []string{"10.1.2.7", "10.1.2.8"}},
		{"db1.lab", 7000, []string{"192.0.2.1", "192.0.2.2"}},
	} {
		clear(lookups)
		pl, err := a.admit(ctx, target(t, "com:ipport="+strconv.Itoa(tc.port)+",port="+tc.host), true)
		if err != nil {
			t.Errorf("admit(%s:%d) = %v", tc.host, tc.port, err)
			continue
		}
		var got []string
		for _, ip := range pl.addrs {
			got = append(got, ip.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("admit(%s:%d) offers %v, want %v", tc.host, tc.port, got, tc.want)
		}
		if _, literal := table[tc.host]; literal && lookups[tc.host] != 1 {
			t.Errorf("admit(%s:%d) looked the name up %d times, want once", tc.host, tc.port, lookups[tc.host])
		}
	}
	// A refusal of a name never shows what it resolved to.
	err := a.Check(target(t, "com:ipport=5555,port=10.1.2.attacker.example"))
	if err == nil || strings.Contains(err.Error(), "203.0.113.9") {
		t.Errorf("refusal %v is missing or shows the resolved address", err)
	}
}

// TestRefusalsDoNotRevealServerPaths: what a path resolves to on the server
// (a symbolic link's target, the file behind /proc/self/fd/N) never appears
// in a message for the client.
func TestRefusalsDoNotRevealServerPaths(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("uses /proc/self/fd")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow-secret")
	mustWrite(t, secret)
	vm := filepath.Join(dir, "vm")
	mustMkdir(t, vm)
	mustSymlink(t, secret, filepath.Join(vm, "s.sock"))
	f, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	a := mustAllow(t, []string{vm + "/*.sock", "/proc/self/fd/*"}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, trans := range []string{
		"com:pipe,port=" + vm + "/s.sock",
		"com:pipe,port=" + proc,
		"com:port=" + proc + ",baud=115200",
		"com:pipe,port=" + vm + "/missing/x.sock",
	} {
		for _, err := range []error{a.Check(target(t, trans)), openErr(ctx, t, trans, a)} {
			if err == nil {
				t.Errorf("%s: admitted", trans)
				continue
			}
			if strings.Contains(err.Error(), "shadow-secret") {
				t.Errorf("%s: message %q reveals where the path leads", trans, err)
			}
		}
	}
}

func openErr(ctx context.Context, t *testing.T, trans string, a *AllowList) error {
	l, err := OpenStream(ctx, target(t, trans), a)
	if err == nil {
		_ = l.Close()
	}
	return err
}

// mustAllow is NewAllowList for a test: a refused pattern fails it.
func mustAllow(t testing.TB, patterns []string, includeDefaults bool) *AllowList {
	t.Helper()
	a, err := NewAllowList(patterns, includeDefaults)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mustAllowOn is mustAllow with the rules of goos.
func mustAllowOn(t testing.TB, goos string, patterns []string, includeDefaults bool) *AllowList {
	t.Helper()
	a, err := newAllowList(patterns, includeDefaults, goos, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
