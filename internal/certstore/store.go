package certstore

import (
	"crypto"
	"crypto/sha1" //nolint:gosec // SHA-1 names certificates (Windows thumbprint); it is not used for security.
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Scope says which of the two stores is meant.
type Scope int

// Scopes. The zero value is the user store.
const (
	User    Scope = iota // the user's store: certuser=
	Machine              // the machine store: machuser=
)

// String returns "user" or "machine".
func (s Scope) String() string {
	if s == Machine {
		return "machine"
	}
	return "user"
}

// Environment variables that override the default store directories.
const (
	EnvUserCerts    = "KDSRV_USER_CERTS"    // directory used as the user store
	EnvMachineCerts = "KDSRV_MACHINE_CERTS" // directory used as the machine store
)

// Store names a certificate store. Path, when set, is a PEM directory used
// instead of the default for Scope (the command layer sets it from a flag).
// The zero Store is the default user store.
type Store struct {
	Scope Scope
	Path  string
}

// UserStore returns the default user store (certuser=).
func UserStore() Store { return Store{Scope: User} }

// MachineStore returns the default machine store (machuser=).
func MachineStore() Store { return Store{Scope: Machine} }

// DirStore returns a store that is the PEM directory dir.
func DirStore(scope Scope, dir string) Store { return Store{Scope: scope, Path: dir} }

// Dir returns the PEM directory the store resolves to: Path, else the
// environment variable for its scope, else the platform default. On Windows
// the platform default is the system store, and Dir returns "" with a nil
// error.
func (s Store) Dir() (string, error) {
	if s.Path != "" {
		return filepath.Clean(s.Path), nil
	}
	env := EnvUserCerts
	if s.Scope == Machine {
		env = EnvMachineCerts
	}
	if v := os.Getenv(env); v != "" {
		return filepath.Clean(v), nil
	}
	return defaultDir(s.Scope)
}

// String describes the store for messages, e.g.
// "user store /home/ann/.config/kdsrv/certs" or "machine store LocalMachine\My".
func (s Store) String() string {
	dir, err := s.Dir()
	switch {
	case err != nil:
		return s.Scope.String() + " store (location unknown)"
	case dir == "":
		return s.Scope.String() + " store " + systemStoreName(s.Scope)
	default:
		return s.Scope.String() + " store " + dir
	}
}

// List returns every certificate in the store, with its private key when the
// store holds one that matches. It fails only when the store itself cannot be
// read; problems with single files are reported by Find when they matter.
func (s Store) List() ([]*Entry, error) {
	dir, err := s.Dir()
	if err != nil {
		return nil, &Error{Kind: ErrUnreadable, Op: "list", Store: s.String(),
			Detail: "cannot work out where the store is; set " + s.envName() + " to a directory", Err: err}
	}
	if dir == "" {
		return listSystem(s)
	}
	return listDir(s, dir)
}

func (s Store) envName() string {
	if s.Scope == Machine {
		return EnvMachineCerts
	}
	return EnvUserCerts
}

// Entry is one certificate of a store.
type Entry struct {
	// Certificate is the leaf certificate.
	Certificate *x509.Certificate
	// Chain holds the certificates that follow the leaf in its file
	// (intermediates), sent to clients with it.
	Chain []*x509.Certificate
	// Key is the private key, or nil when the store holds none for this
	// certificate. Find never returns an entry with a nil Key.
	Key crypto.Signer
	// FriendlyName is the optional friendly name (sidecar file, PEM header
	// or Windows property).
	FriendlyName string
	// Source says where the certificate was read: a file path, or the
	// system store's name.
	Source string
	// KeySource says where the key was read, if any.
	KeySource string

	// keyNote explains why Key is nil: a mismatching key next to the
	// certificate, or a key file that could not be read.
	keyNote     string
	keyMismatch bool
}

// CommonName returns the subject common name of the leaf.
func (e *Entry) CommonName() string { return e.Certificate.Subject.CommonName }

// Name returns the friendly name if there is one, else the common name.
func (e *Entry) Name() string {
	if e.FriendlyName != "" {
		return e.FriendlyName
	}
	return e.CommonName()
}

// Thumbprint returns the SHA-1 thumbprint of the leaf in lower-case hex
// without separators (the Windows snap-in's value).
func (e *Entry) Thumbprint() string { return Thumbprint(e.Certificate) }

// SHA256 returns the SHA-256 fingerprint of the leaf in lower-case hex.
func (e *Entry) SHA256() string { return ThumbprintSHA256(e.Certificate) }

// TLSCertificate returns the entry as a certificate that crypto/tls can serve.
func (e *Entry) TLSCertificate() tls.Certificate {
	c := tls.Certificate{PrivateKey: e.Key, Leaf: e.Certificate}
	c.Certificate = append(c.Certificate, e.Certificate.Raw)
	for _, ic := range e.Chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	return c
}

// String describes the entry without any key material, e.g.
// `CN=host1 "my server" a909...2a7b (valid 2025-01-01 to 2026-01-01)`.
func (e *Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CN=%q", e.CommonName())
	if e.FriendlyName != "" {
		fmt.Fprintf(&b, " friendly name %q", e.FriendlyName)
	}
	fmt.Fprintf(&b, " thumbprint %s (valid %s to %s", e.Thumbprint(),
		e.Certificate.NotBefore.UTC().Format(time.DateOnly), e.Certificate.NotAfter.UTC().Format(time.DateOnly))
	if e.Key == nil {
		b.WriteString(", no private key")
	}
	b.WriteString(")")
	return b.String()
}

// Thumbprint returns the SHA-1 thumbprint of c in lower-case hex.
func Thumbprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw) //nolint:gosec // identification only, as on Windows.
	return hex.EncodeToString(sum[:])
}

// ThumbprintSHA256 returns the SHA-256 fingerprint of c in lower-case hex.
func ThumbprintSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// NormalizeThumbprint turns a thumbprint as a person types or pastes it
// ("A9 09 50 2d", "a9:09:50:2d", with the invisible marks the Windows
// snap-in copies along) into lower-case hex. ok is false unless the result is
// 40 (SHA-1) or 64 (SHA-256) hex digits.
func NormalizeThumbprint(s string) (hexDigits string, ok bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == ':' || r == '\t' || r == '-':
			continue
		case r == '\u200e' || r == '\u200f' || r == '\ufeff' || r == '\u00a0':
			continue // marks the snap-in's "copy" adds; they are invisible
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r >= 'A' && r <= 'F':
			b.WriteRune(r - 'A' + 'a')
		default:
			return "", false
		}
	}
	out := b.String()
	if len(out) != 2*sha1.Size && len(out) != 2*sha256.Size {
		return "", false
	}
	return out, true
}
