package spec

import (
	"strings"
	"testing"
)

func TestExpandPipeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pid, tid int
		want     string
	}{
		{"kd_%d_%x", 1234, 0x1f, "kd_1234_1f"},
		{"kd_%x_%d", 255, 7, "kd_ff_7"},
		{"p%x", 255, 1, "pff"},
		{"%d", 42, 43, "42"},
		{"a%d%d%d", 1, 2, "a12%d"},
		{"plain", 1, 2, "plain"},
		{"", 1, 2, ""},
		{"50%", 1, 2, "50%"},
		{"%s%d", 9, 8, "%s9"},
	}
	for _, tc := range tests {
		if got := ExpandPipeName(tc.name, tc.pid, tc.tid); got != tc.want {
			t.Errorf("ExpandPipeName(%q, %d, %d) = %q, want %q", tc.name, tc.pid, tc.tid, got, tc.want)
		}
	}
}

func TestCOMDevice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		port, goos string
		want       string // "" = error
		frag       string // fragment of the error
	}{
		{"COM2", "linux", "/dev/ttyS1", ""},
		{"com1", "linux", "/dev/ttyS0", ""},
		{"2", "linux", "/dev/ttyS1", ""},
		{`\\.\COM10`, "linux", "/dev/ttyS9", ""},
		{"/dev/ttyUSB0", "linux", "/dev/ttyUSB0", ""},
		{"COM3", "android", "/dev/ttyS2", ""},
		{"COM2", "windows", `\\.\COM2`, ""},
		{"12", "windows", `\\.\COM12`, ""},
		{`\\.\CNCA0`, "windows", `\\.\CNCA0`, ""},
		{"/dev/ttyUSB0", "windows", "", "not a Windows serial device"},
		{"COM2", "darwin", "", "/dev/cu."},
		{"/dev/cu.usbserial-1420", "darwin", "/dev/cu.usbserial-1420", ""},
		{"COM1", "freebsd", "/dev/cuau0", ""},
		{"COM1", "openbsd", "", "device path"},
		{`\\.\COMX`, "linux", "", "no meaning on linux"},
		{"LPT1", "linux", "", "not a COM port"},
		{"COM0", "windows", "", "not a COM port"},
		{"", "linux", "", "needs a value"},
	}
	for _, tc := range tests {
		got, err := COMDevice(tc.port, tc.goos)
		if tc.want == "" {
			if err == nil {
				t.Errorf("COMDevice(%q, %q) = %q, want an error", tc.port, tc.goos, got)
			} else if !strings.Contains(err.Error(), tc.frag) {
				t.Errorf("COMDevice(%q, %q): error %q lacks %q", tc.port, tc.goos, err, tc.frag)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("COMDevice(%q, %q) = %q, %v; want %q", tc.port, tc.goos, got, err, tc.want)
		}
	}
}

// seedForms are the seven synopsis lines of the original tool, verbatim.
var seedForms = []string{
	`kdsrv -t npipe:pipe=PipeName[,hidden][,password=Password][,IcfEnable]`,
	`kdsrv -t tcp:port=Socket[,hidden][,password=Password][,ipversion=6][,IcfEnable]`,
	`kdsrv -t tcp:port=Socket,clicon=Client[,password=Password][,ipversion=6]`,
	`kdsrv -t com:port=COMPort,baud=BaudRate,channel=COMChannel[,hidden][,password=Password]`,
	`kdsrv -t spipe:proto=Protocol,{certuser=Cert|machuser=Cert},pipe=PipeName[,hidden][,password=Password]`,
	`kdsrv -t ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket[,hidden][,password=Password]`,
	`kdsrv -t ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket,clicon=Client[,password=Password]`,
}

func TestHelp(t *testing.T) {
	t.Parallel()
	lines := strings.Split(ServerHelp, "\n")
	for _, f := range seedForms {
		found := false
		for _, l := range lines {
			if l == f {
				found = true
			}
		}
		if !found {
			t.Errorf("ServerHelp lacks the seed line %q", f)
		}
	}
	for _, want := range []string{EnvPort, EnvBaudRate, EnvBus, "trans=@{", "server=@{", "com:pipe", "net:port=", "ipport=", "cafile=", "thumbprint="} {
		if !strings.Contains(ClientHelp, want) {
			t.Errorf("ClientHelp lacks %q", want)
		}
	}
	// Every example in the help must parse, once the shell has removed
	// its single quotes; one a shell would change (braces, backslashes)
	// must be quoted.
	unquote := func(s string) string {
		if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
			return s[1 : len(s)-1]
		}
		if strings.ContainsAny(s, "{}\\") {
			t.Errorf("help example %q is not copy-paste safe: put it in single quotes", s)
		}
		return s
	}
	for _, l := range strings.Split(ServerHelp, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "kdsrv -t "); ok && !strings.Contains(s, "[") {
			s = unquote(s)
			if _, err := ParseServerTransport(s); err != nil {
				t.Errorf("ServerHelp example %q: %v", s, err)
			}
		}
	}
	for _, l := range strings.Split(ClientHelp, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "kdclient -k "); ok && !strings.Contains(s, "<") {
			s = unquote(s)
			if _, err := ParseConnect(s); err != nil {
				t.Errorf("ClientHelp example %q: %v", s, err)
			}
		}
	}
}
