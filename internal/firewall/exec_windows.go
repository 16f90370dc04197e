package firewall

import (
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"
)

// prepareCmd passes the command line verbatim: netsh wants name="a b",
// which the default Windows argument quoting would mangle. Every argument
// the package builds is already quoted for netsh.
func prepareCmd(cmd *exec.Cmd, argv []string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: strings.Join(argv, " ")}
}

// commandLine renders argv as it was passed to the program.
func commandLine(argv []string) string { return strings.Join(argv, " ") }

// privileged reports whether the process token is elevated (Administrator).
func privileged() bool {
	return windows.GetCurrentProcessToken().IsElevated()
}
