//go:build unix

package discovery

import "os"

// notElevatedReason explains, for this platform, why a server is not
// discoverable when it is not elevated.
const notElevatedReason = "kdsrv is not running as root (start it with sudo to make it discoverable)"

// Elevated reports whether the current process runs with elevation: on
// Linux and macOS, an effective user id of 0.
func Elevated() bool { return os.Geteuid() == 0 }
