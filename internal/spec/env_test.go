package spec

import (
	"errors"
	"strings"
	"testing"
)

// fakeEnv is a getenv that records which variables were read.
type fakeEnv struct {
	vars map[string]string
	read []string
}

func (f *fakeEnv) getenv(k string) string {
	f.read = append(f.read, k)
	return f.vars[k]
}

func TestFillFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		env     map[string]string
		want    string // Canonical() after filling
		fillKey string // error key of FillFromEnv, "-" for none
		fillMsg string // fragment of the FillFromEnv error
		doneKey string // error key of Complete, "-" for none
		doneMsg string // fragment of the Complete error
	}{
		{"bare com from both vars", "com:", map[string]string{EnvPort: "com3", EnvBaudRate: "57600"},
			"com:port=COM3,baud=57600", "-", "", "-", ""},
		{"baud only from env", "com:port=COM1", map[string]string{EnvPort: "COM4", EnvBaudRate: "115200"},
			"com:port=COM1,baud=115200", "-", "", "-", ""},
		{"explicit values win, invalid env unread", "com:port=COM1,baud=9600", map[string]string{EnvPort: "bogus", EnvBaudRate: "abc"},
			"com:port=COM1,baud=9600", "-", "", "-", ""},
		{"port only from env", "com:baud=9600", map[string]string{EnvPort: "2"},
			"com:port=COM2,baud=9600", "-", "", "-", ""},
		{"device path from env", "com:", map[string]string{EnvPort: "/dev/ttyUSB0", EnvBaudRate: "921600"},
			"com:port=/dev/ttyUSB0,baud=921600", "-", "", "-", ""},
		{"invalid port variable", "com:", map[string]string{EnvPort: "LPT1"},
			"", "port", EnvPort + " is invalid", "-", ""},
		{"invalid baud variable", "com:port=COM1", map[string]string{EnvBaudRate: "0"},
			"", "baud", EnvBaudRate + " is invalid", "-", ""},
		{"1394 bus refused", "com:", map[string]string{EnvBus: "1394", EnvPort: "COM1"},
			"", "", "not supported", "-", ""},
		{"unknown bus", "com:", map[string]string{EnvBus: "pci"},
			"", "", "not a known bus", "-", ""},
		{"bus ignored when port given", "com:port=COM1,baud=9600", map[string]string{EnvBus: "1394"},
			"com:port=COM1,baud=9600", "-", "", "-", ""},
		{"nothing anywhere", "com:", nil,
			"com:", "-", "", "port", EnvPort},
		{"baud missing", "com:port=COM1", nil,
			"com:port=COM1", "-", "", "baud", EnvBaudRate},
		{"pipe path from env", "com:pipe,resets=0", map[string]string{EnvPort: "/run/vm/com1.sock", EnvBaudRate: "115200"},
			"com:pipe,port=/run/vm/com1.sock,resets=0", "-", "", "-", ""},
		{"pipe path invalid", "com:pipe", map[string]string{EnvPort: "COM1"},
			"", "port", "invalid for com:pipe", "-", ""},
		{"pipe path missing", "com:pipe", nil,
			"com:pipe", "-", "", "port", EnvPort},
		{"ipport takes nothing from env", "com:ipport=4445", map[string]string{EnvPort: "COM1"},
			"com:ipport=4445", "-", "", "port", "no environment variable"},
		{"ipport complete", "com:ipport=4445,port=127.0.0.1", nil,
			"com:ipport=4445,port=127.0.0.1", "-", "", "-", ""},
		{"net needs key", "net:port=50000", map[string]string{EnvPort: "COM1"},
			"net:port=50000", "-", "", "key", "bcdedit"},
		{"net needs port", "net:key=1.1.1.1", nil,
			"net:key=1.1.1.1", "-", "", "port", "UDP port"},
		{"net complete", "net:port=50000,key=1.1.1.1", nil,
			"net:port=50000,key=1.1.1.1", "-", "", "-", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg, err := ParseTarget(tc.in)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.in, err)
			}
			env := &fakeEnv{vars: tc.env}
			err = tg.FillFromEnv(env.getenv)
			if !checkErr(t, "FillFromEnv", err, tc.fillKey, tc.fillMsg) {
				return
			}
			if got := tg.Canonical(); got != tc.want {
				t.Errorf("after FillFromEnv: %q, want %q", got, tc.want)
			}
			checkErr(t, "Complete", tg.Complete(), tc.doneKey, tc.doneMsg)
			// A filled target must survive the trip to the server.
			again, err := ParseTarget(tg.Canonical())
			if err != nil {
				t.Fatalf("re-parse %q: %v", tg.Canonical(), err)
			}
			if *again != *tg {
				t.Errorf("re-parse %q = %+v, want %+v", tg.Canonical(), again, tg)
			}
		})
	}
}

// checkErr compares err with an expected key ("-" = no error) and message
// fragment. It returns whether the caller should go on (no error).
func checkErr(t *testing.T, what string, err error, key, frag string) bool {
	t.Helper()
	if key == "-" {
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", what, err)
		}
		return true
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error = %v, want *Error with key %q", what, err, key)
	}
	if e.Key != key {
		t.Errorf("%s: key = %q, want %q (%v)", what, e.Key, key, err)
	}
	if !strings.Contains(err.Error(), frag) {
		t.Errorf("%s: %q lacks %q", what, err.Error(), frag)
	}
	return false
}

// TestFillFromEnvReadsOnlyWhatIsMissing proves that a complete target does
// not consult the environment at all.
func TestFillFromEnvReadsOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"com:port=COM1,baud=9600", "com:pipe,port=/x", "com:ipport=1,port=h", "net:port=1,key=1.1.1.1"} {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Fatal(err)
		}
		env := &fakeEnv{}
		if err := tg.FillFromEnv(env.getenv); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(env.read) != 0 {
			t.Errorf("%q: read %v, want nothing", in, env.read)
		}
	}
}
