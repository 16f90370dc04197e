//go:build windows

package discovery

import (
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
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

// registryDirSDDL is the protected DACL of the registry directory: full
// control for SYSTEM and Administrators, read and traverse for Users,
// inherited by the entries.
const registryDirSDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FRFX;;;BU)"

// secureDir replaces the directory's inherited ACL (ProgramData lets
// ordinary users create files) with registryDirSDDL.
func secureDir(dir string) error {
	sd, err := windows.SecurityDescriptorFromString(registryDirSDDL)
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}
