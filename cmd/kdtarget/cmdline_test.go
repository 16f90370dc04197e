package main

import (
	"slices"
	"strings"
	"testing"
)

func TestInitArgs(t *testing.T) {
	for _, c := range []struct {
		cmdline string
		args    []string
		ok      bool
	}{
		{"console=ttyS0 quiet -- -listen serial:/dev/ttyS0,baud=115200 -v\n",
			[]string{"-listen", "serial:/dev/ttyS0,baud=115200", "-v"}, true},
		{`root=/dev/sda1 -- -dbgprint "1s" -listen "serial:/dev/tty S0"`,
			[]string{"-dbgprint", "1s", "-listen", "serial:/dev/tty S0"}, true},
		{"console=ttyS0 --", nil, true},
		{"console=ttyS0 quiet", nil, false},
		{"", nil, false},
		{`init="/init --" -- -halted`, []string{"-halted"}, true},
	} {
		args, ok := initArgs(c.cmdline)
		if ok != c.ok || !slices.Equal(args, c.args) {
			t.Errorf("initArgs(%q) = %q, %v; want %q, %v", c.cmdline, args, ok, c.args, c.ok)
		}
	}
}

// FuzzInitArgs: any kernel command line splits without panicking; the
// arguments after "--", written back with each one quoted, split into the
// same arguments.
func FuzzInitArgs(f *testing.F) {
	f.Fuzz(func(t *testing.T, cmdline string) {
		args, ok := initArgs(cmdline)
		if !ok {
			if slices.Contains(splitCmdline(cmdline), "--") {
				t.Fatalf("initArgs(%q) missed the --", cmdline)
			}
			return
		}
		line := "--"
		for _, a := range args {
			if strings.Contains(a, `"`) {
				return // a quote inside an argument cannot be written back
			}
			line += ` "` + a + `"`
		}
		again, ok := initArgs(line)
		if !ok || !slices.Equal(again, args) {
			t.Fatalf("initArgs(%q) = %q; written back as %q it gives %q", cmdline, args, line, again)
		}
	})
}
