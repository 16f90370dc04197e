//go:build !windows

package firewall

import "os/exec"

// prepareCmd needs nothing on this platform: arguments reach the program
// unchanged.
func prepareCmd(*exec.Cmd, []string) {}
