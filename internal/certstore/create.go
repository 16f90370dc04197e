package certstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// DefaultValidity is how long CreateSelfSigned makes a certificate valid
// when validFor is zero or negative: two years.
const DefaultValidity = 2 * 365 * 24 * time.Hour

// clockSkew back-dates NotBefore so a peer whose clock is a little behind
// still accepts a certificate made a moment ago.
const clockSkew = 5 * time.Minute

// DefaultHosts returns the names a self-signed certificate covers when none
// are given: localhost, 127.0.0.1, ::1 and this machine's host name.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.EqualFold(h, "localhost") {
		hosts = append(hosts, h)
	}
	return hosts
}

// CreateOptions are the settings of Create.
type CreateOptions struct {
	Name      string        // subject common name, also the file base name in the store
	Hosts     []string      // DNS names and IP addresses (SANs); empty: DefaultHosts()
	ValidFor  time.Duration // zero or negative: DefaultValidity
	Overwrite bool          // replace NAME.crt/NAME.key if they exist
}

// CreateSelfSigned makes a self-signed ECDSA P-256 server certificate named
// name (its common name) for hosts, valid for validFor, and stores it in
// store as NAME.crt (mode 0644) and NAME.key (mode 0600), creating the store
// directory with mode 0700 if needed. It refuses (ErrExists) when the store
// already has a certificate of that name; use Create with Overwrite to
// replace it. This is what "kdsrv cert create NAME" runs.
func CreateSelfSigned(store Store, name string, hosts []string, validFor time.Duration) (*Entry, error) {
	return Create(store, CreateOptions{Name: name, Hosts: hosts, ValidFor: validFor})
}

// Create is CreateSelfSigned with all options.
func Create(store Store, o CreateOptions) (*Entry, error) {
	fail := func(kind error, detail string, err error) error {
		return &Error{Kind: kind, Op: "create", Store: store.String(), Name: o.Name, Detail: detail, Err: err}
	}
	if err := checkCertName(o.Name); err != nil {
		return nil, fail(ErrInvalid, err.Error(), nil)
	}
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts()
	}
	validFor := o.ValidFor
	if validFor <= 0 {
		validFor = DefaultValidity
	}
	now := time.Now()
	tmpl, err := serverTemplate(o.Name, hosts, now.Add(-clockSkew), now.Add(validFor), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, fail(ErrInvalid, err.Error(), nil)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fail(ErrInvalid, "generating an ECDSA P-256 key failed", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fail(ErrInvalid, "signing the certificate failed", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fail(ErrInvalid, "the new certificate does not parse", err)
	}
	return Add(store, &Entry{Certificate: cert, Key: key}, o.Overwrite)
}

// checkCertName validates a certificate name given for creation.
func checkCertName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("the certificate name is empty")
	case name != strings.TrimSpace(name):
		return errors.New("the certificate name starts or ends with a space")
	case len(name) > 64:
		return errors.New("the certificate name is longer than 64 characters (the common-name limit)")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("the certificate name contains control characters")
	}
	return nil
}

// fileBase turns a certificate name into a safe file base name.
func fileBase(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	s := strings.TrimLeft(string(b), ".")
	if s == "" {
		s = "cert"
	}
	return s
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// serverTemplate builds a leaf template for hosts.
func serverTemplate(cn string, hosts []string, notBefore, notAfter time.Time, eku []x509.ExtKeyUsage) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, " /:@\\") {
			return nil, fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		t.DNSNames = append(t.DNSNames, h)
	}
	return t, nil
}

// Add writes e into the PEM directory of store: the leaf and its chain to
// BASE.crt (mode 0644) and the key to BASE.key (mode 0600), where BASE is
// e.Name() with unsafe characters replaced by "_"; a friendly name other
// than the common name goes to BASE.friendlyname. The directory is created
// with mode 0700 if missing. Without overwrite, Add refuses (ErrExists) if
// those files exist or the store holds a certificate with the same name. It
// returns the entry as stored (Source and KeySource set).
func Add(store Store, e *Entry, overwrite bool) (*Entry, error) {
	name := e.Name()
	fail := func(kind error, detail string, err error) (*Entry, error) {
		return nil, &Error{Kind: kind, Op: "add", Store: store.String(), Name: name, Detail: detail, Err: err}
	}
	if e.Certificate == nil || e.Key == nil {
		return fail(ErrInvalid, "an entry to store needs both a certificate and its private key", nil)
	}
	if !publicKeyEqual(e.Certificate.PublicKey, e.Key) {
		return fail(ErrKeyMismatch, "the private key does not belong to the certificate", nil)
	}
	dir, err := store.Dir()
	if err != nil {
		return fail(ErrUnreadable, "cannot work out where the store is; set "+store.envName(), err)
	}
	if dir == "" {
		return fail(ErrNotSupported, "certificates cannot be created in the Windows system store by kdsrv; "+
			"use PowerShell New-SelfSignedCertificate -CertStoreLocation Cert:\\CurrentUser\\My -DnsName HOST, "+
			"or set "+store.envName()+" to a directory to use a PEM store", nil)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(ErrUnreadable, "cannot create the store directory", err)
	}
	base := filepath.Join(dir, fileBase(name))
	certPath, keyPath, fnPath := base+".crt", base+".key", base+FriendlyNameExt

	existing, err := listDir(store, dir)
	if err != nil {
		return nil, err
	}
	for _, x := range existing {
		sameFiles := x.Source == certPath
		sameName := strings.EqualFold(x.CommonName(), name) || strings.EqualFold(x.FriendlyName, name)
		if sameName && (!overwrite || !sameFiles) {
			return fail(ErrExists, fmt.Sprintf("the store already holds %s in %s; choose another name, or remove that file first", x.String(), x.Source), nil)
		}
	}
	if !overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail(ErrExists, p+" already exists; choose another name or remove it", nil)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fail(ErrUnreadable, "cannot check "+p, err)
			}
		}
	}

	keyDER, err := x509.MarshalPKCS8PrivateKey(e.Key)
	if err != nil {
		return fail(ErrInvalid, fmt.Sprintf("a %T private key cannot be stored as PKCS#8", e.Key), nil)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate.Raw})
	for _, c := range e.Chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	// Key first: a certificate without its key is an error, a key without
	// its certificate is invisible.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fail(ErrUnreadable, "cannot write the private key", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fail(ErrUnreadable, "cannot write the certificate", err)
	}
	if e.FriendlyName != "" && e.FriendlyName != e.CommonName() {
		if err := writeFileAtomic(fnPath, []byte(e.FriendlyName+"\n"), 0o644); err != nil {
			return fail(ErrUnreadable, "cannot write the friendly name", err)
		}
	} else if overwrite {
		_ = os.Remove(fnPath)
	}
	out := *e
	out.Chain = append([]*x509.Certificate(nil), e.Chain...)
	out.Source, out.KeySource = certPath, keyPath
	return &out, nil
}

// writeFileAtomic writes data to a temporary file in the same directory with
// the final mode, then renames it into place, so readers never see a partial
// file and a key file is never readable by others, not even briefly.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
