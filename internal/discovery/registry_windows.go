//go:build windows

package discovery

import (
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultDir returns the machine-wide registry directory:
// %ProgramData%\kdsrv\servers (writable only by administrators when created
// by an elevated server).
func DefaultDir() string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "kdsrv", "servers")
}

// trustedOwner accepts every entry on Windows; the directory's ACL is what
// keeps unprivileged users out.
func trustedOwner(fs.FileInfo) bool { return true }
