//go:build windows

package discovery

import "golang.org/x/sys/windows"

// notElevatedReason explains, for this platform, why a server is not
// discoverable when it is not elevated.
const notElevatedReason = "kdsrv is not running elevated (start it from a command prompt opened with \"Run as administrator\")"

// Elevated reports whether the current process runs with elevation: on
// Windows, an elevated (UAC) process token.
func Elevated() bool { return windows.GetCurrentProcessToken().IsElevated() }
