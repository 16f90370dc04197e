//go:build !windows

package certstore

import (
	"errors"
	"os"
	"path/filepath"
)

// defaultDir returns the PEM directory of a store when neither an explicit
// path nor an environment variable names one.
func defaultDir(scope Scope) (string, error) {
	if scope == Machine {
		return "/etc/kdsrv/certs", nil
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "kdsrv", "certs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "kdsrv", "certs"), nil
}

// systemStoreName is only meaningful on Windows.
func systemStoreName(Scope) string { return "" }

// listSystem is only reachable on Windows, where defaultDir returns "".
func listSystem(s Store) ([]*Entry, error) {
	return nil, &Error{Kind: ErrNotSupported, Op: "list", Store: s.String(),
		Err: errors.New("system certificate stores exist only on Windows")}
}
