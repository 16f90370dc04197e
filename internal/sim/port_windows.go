//go:build windows

package sim

// maxUnixPath is the longest AF_UNIX socket path Windows accepts.
const maxUnixPath = 107
