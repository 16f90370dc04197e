//go:build unix

package discovery

import (
	"io/fs"
	"os"
	"syscall"
)

// DefaultDir returns the machine-wide registry directory: /run/kdsrv/servers
// on Linux and macOS (root-owned, mode 0755).
func DefaultDir() string { return "/run/kdsrv/servers" }

// trustedOwner reports whether a registry entry may be believed: it must be
// owned by root or by the calling user, so that other unprivileged users
// cannot plant entries in a directory that is (wrongly) writable to them.
func trustedOwner(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return st.Uid == 0 || int(st.Uid) == os.Geteuid()
}

// secureDir does nothing on Unix: the directory is created mode 0755 by
// the (root) server, and List ignores entries of other unprivileged users.
func secureDir(string) error { return nil }
