package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkParse is the property every fuzz target checks: parsing never panics;
// a failure is an *Error with a one-line message; a success prints a
// canonical form that parses back to the same value and is a fixed point,
// and String() never shows the password or KDNET key.
func checkParse(t *testing.T, g grammar, s string) printable {
	t.Helper()
	v, err := parseAs(g, s)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s %q: error %T is not *Error", g, s, err)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\n\r\x00") {
			t.Fatalf("%s %q: error message is not one clean line: %q", g, s, msg)
		}
		if isSecretKey(e.Key) && e.Value != "" {
			t.Fatalf("%s %q: secret key %q carries a value", g, s, e.Key)
		}
		return nil
	}
	c := v.Canonical()
	w, err := parseAs(g, c)
	if err != nil {
		t.Fatalf("%s %q: canonical %q does not parse: %v", g, s, c, err)
	}
	if d := cmp.Diff(v, w); d != "" {
		t.Fatalf("%s %q: round trip through %q differs:\n%s", g, s, c, d)
	}
	if c2 := w.Canonical(); c2 != c {
		t.Fatalf("%s %q: canonical not stable: %q then %q", g, s, c, c2)
	}
	str := v.String()
	for _, secret := range secrets(v) {
		if showsField(str, "password", secret) || showsField(str, "key", secret) {
			t.Fatalf("%s %q: String() %q shows a secret", g, s, str)
		}
	}
	return v
}

// showsField reports whether the printed form s has the field key=value as
// a whole field (value "1" in "port=1" is not a password shown).
func showsField(s, key, value string) bool {
	field := key + "=" + value
	for i := 0; ; {
		j := strings.Index(s[i:], field)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(field)
		before := start == 0 || strings.ContainsRune(",:{", rune(s[start-1]))
		after := end == len(s) || s[end] == ',' || s[end] == '}'
		if before && after {
			return true
		}
		i = start + 1
	}
}

// secrets lists the password and KDNET key held by a parse result.
func secrets(v printable) []string {
	var out []string
	add := func(s string) {
		if s != "" && s != "*" {
			out = append(out, s)
		}
	}
	switch x := v.(type) {
	case *Transport:
		add(x.Password)
	case *Target:
		add(x.Key)
	case *Connect:
		add(x.Server.Password)
		add(x.Trans.Key)
	}
	return out
}

// addRows seeds a fuzz target with the table rows of grammar g.
func addRows(f *testing.F, g grammar) {
	for _, r := range table {
		if r.g == g {
			f.Add(r.in)
		}
	}
}

func FuzzParseServerTransport(f *testing.F) {
	addRows(f, gServer)
	f.Fuzz(func(t *testing.T, s string) {
		if v := checkParse(t, gServer, s); v != nil {
			_ = v.(*Transport).Warnings()
		}
	})
}

func FuzzParseClientTransport(f *testing.F) {
	addRows(f, gClient)
	f.Fuzz(func(t *testing.T, s string) {
		checkParse(t, gClient, s)
	})
}

func FuzzParseConnect(f *testing.F) {
	addRows(f, gConnect)
	f.Fuzz(func(t *testing.T, s string) {
		checkParse(t, gConnect, s)
	})
}

// FuzzParseTarget also fills the parsed target from a fuzzed environment and
// checks that the filled target still round-trips.
func FuzzParseTarget(f *testing.F) {
	for _, r := range table {
		if r.g == gTarget {
			f.Add(r.in, "", "")
		}
	}
	f.Add("com:", "com2", "115200")
	f.Add("com:pipe", "/tmp/vm.sock", "9600")
	f.Fuzz(func(t *testing.T, s, port, baud string) {
		v := checkParse(t, gTarget, s)
		if v == nil {
			return
		}
		tg := v.(*Target)
		env := map[string]string{EnvPort: port, EnvBaudRate: baud}
		if err := tg.FillFromEnv(func(k string) string { return env[k] }); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("FillFromEnv error %T is not *Error", err)
			}
			return
		}
		_ = tg.Complete()
		checkParse(t, gTarget, tg.Canonical())
	})
}

func FuzzCOMDevice(f *testing.F) {
	for _, p := range []string{"COM2", "2", `\\.\COM3`, "/dev/ttyUSB0", "LPT1", ""} {
		for _, goos := range []string{"linux", "windows", "darwin"} {
			f.Add(p, goos)
		}
	}
	f.Fuzz(func(t *testing.T, port, goos string) {
		d, err := COMDevice(port, goos)
		if err == nil && d == "" {
			t.Fatalf("COMDevice(%q, %q) returned no device and no error", port, goos)
		}
	})
}
