package targetlink

import (
	"path"
	"strings"
	"testing"

	"kdsrv/internal/spec"
)

// FuzzParsePattern feeds arbitrary -allow patterns to the parser for each
// kind of system: it must not panic, an accepted pattern must be kept as
// given, and matching any target against it must not panic.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"/run/vm/*.sock", "COM*", `\\.\pipe\vm-*`, "127.0.0.1:5555", "localhost:*", "[::1]:*",
		"10.0.0.*:5555-5560", "net:50000-50039", "net:*", "/a/**/b", "/x/[a", "host:9-3", ""} {
		f.Add(s)
	}
	targets := []string{"com:port=COM2,baud=9600", "com:pipe,port=/run/vm/a.sock", `com:pipe,port=\\.\pipe\vm-1`,
		"com:ipport=5555,port=127.0.0.1", "com:ipport=5555,port=::1", "net:port=50000,key=1.2.3.4"}
	var parsed []*spec.Target
	for _, s := range targets {
		tg, err := spec.ParseTarget(s)
		if err != nil {
			f.Fatal(err)
		}
		parsed = append(parsed, tg)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, goos := range []string{"linux", "windows", "darwin"} {
			a, err := newAllowList([]string{p}, false, goos, nil)
			if err != nil {
				if !strings.Contains(err.Error(), "invalid -allow pattern") {
					t.Fatalf("%s: error %q does not say which pattern", goos, err)
				}
				continue
			}
			if got := a.Patterns(); len(got) != 1 || got[0] != p {
				t.Fatalf("%s: Patterns() = %q, want [%q]", goos, got, p)
			}
			for _, tg := range parsed {
				_ = a.Check(tg)
			}
		}
	})
}

// FuzzSuggestion checks that the exact pattern a refusal suggests for a
// socket path admits that path, whatever characters it holds.
func FuzzSuggestion(f *testing.F) {
	for _, s := range []string{"/tmp/x.sock", "/tmp/a*b?.sock", `/tmp/[x]\y`, "/run/vm/../x", "/", "/a b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tg, err := spec.ParseTarget("com:pipe,port=" + p)
		if err != nil || tg.Port != p || !strings.HasPrefix(p, "/") {
			return // not a pipe path the grammar accepts
		}
		none := mustAllowOn(t, "linux", nil, false)
		err = none.Check(tg)
		na, ok := err.(*NotAllowedError)
		if !ok {
			t.Fatalf("Check(%q) on an empty list = %v, want *NotAllowedError", p, err)
		}
		a, err := newAllowList([]string{na.Suggest}, false, "linux", nil)
		if err != nil {
			if strings.Contains(na.Suggest, "**") {
				return // "**" is refused in patterns; such a name needs a wider glob
			}
			t.Fatalf("suggested pattern %q does not parse: %v", na.Suggest, err)
		}
		if err := a.Check(tg); err != nil {
			t.Fatalf("suggested pattern %q does not admit %q (clean %q): %v", na.Suggest, p, path.Clean(p), err)
		}
	})
}
