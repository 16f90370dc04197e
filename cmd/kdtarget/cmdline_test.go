package main

import (
	"slices"
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
