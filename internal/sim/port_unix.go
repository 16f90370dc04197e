//go:build unix

package sim

import "golang.org/x/sys/unix"

// maxUnixPath is the longest socket path this system accepts (sun_path
// minus its terminating NUL): 107 bytes on Linux, 103 on macOS and BSD.
var maxUnixPath = len(unix.RawSockaddrUnix{}.Path) - 1
