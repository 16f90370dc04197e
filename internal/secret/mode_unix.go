//go:build !windows

package secret

import "io/fs"

// checkMode refuses a file that group or others may read or write: its
// secret would be readable by other local users, or replaceable by them.
func checkMode(what, path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return &ModeError{What: what, Path: path, Mode: fi.Mode()}
	}
	return nil
}
