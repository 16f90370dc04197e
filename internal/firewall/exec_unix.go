//go:build !windows

package firewall

import "os/exec"

// prepareCmd needs nothing on this platform: arguments reach the program
// unchanged.
func prepareCmd(*exec.Cmd, []string) {}

// commandLine renders argv for a POSIX shell.
func commandLine(argv []string) string { return shellJoin(argv) }
