package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"time"
)

// This file holds helpers for tests, exported so that the tests of other
// packages (transport, wire, end-to-end) can make a CA and server
// certificates in a few milliseconds. They are ordinary, valid certificates;
// nothing here weakens production code.

// CreateCA makes a self-signed ECDSA P-256 certificate authority named cn,
// valid from a few minutes ago for validFor.
func CreateCA(cn string, validFor time.Duration) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certstore: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("certstore: CA serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("certstore: signing CA %q: %w", cn, err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certstore: parsing CA %q: %w", cn, err)
	}
	return ca, key, nil
}

// CertSpec describes a certificate for IssueServerCert.
type CertSpec struct {
	CommonName   string   // subject CN; required
	FriendlyName string   // optional friendly name (stored as a sidecar by Add)
	Hosts        []string // SANs; empty: localhost, 127.0.0.1, ::1
	// NotBefore and NotAfter default to a few minutes ago and one day from
	// now. Set them in the past or future to make expired or not yet valid
	// certificates.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage defaults to serverAuth; NoExtKeyUsage leaves the
	// extension out entirely.
	ExtKeyUsage   []x509.ExtKeyUsage
	NoExtKeyUsage bool
	// RSA makes a 2048-bit RSA key instead of ECDSA P-256.
	RSA bool
}

// IssueServerCert issues a certificate for spec signed by ca/caKey and
// returns it in memory with its new key. When ca is nil the certificate is
// self-signed.
func IssueServerCert(ca *x509.Certificate, caKey crypto.Signer, spec CertSpec) (*Entry, error) {
	if spec.CommonName == "" {
		return nil, fmt.Errorf("certstore: IssueServerCert: CommonName is required")
	}
	var key crypto.Signer
	var err error
	if spec.RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("certstore: IssueServerCert %q: key: %w", spec.CommonName, err)
	}
	now := time.Now()
	nb, na := spec.NotBefore, spec.NotAfter
	if nb.IsZero() {
		nb = now.Add(-clockSkew)
	}
	if na.IsZero() {
		na = now.Add(24 * time.Hour)
	}
	eku := spec.ExtKeyUsage
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if spec.NoExtKeyUsage {
		eku = nil
	}
	hosts := spec.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	tmpl, err := serverTemplate(spec.CommonName, hosts, nb, na, eku)
	if err != nil {
		return nil, fmt.Errorf("certstore: IssueServerCert %q: %w", spec.CommonName, err)
	}
	if spec.RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("certstore: IssueServerCert %q: signing: %w", spec.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certstore: IssueServerCert %q: parsing: %w", spec.CommonName, err)
	}
	return &Entry{Certificate: leaf, Key: key, FriendlyName: spec.FriendlyName, Source: "memory"}, nil
}

// TestPKI is a throw-away certificate authority for tests.
type TestPKI struct {
	CA     *x509.Certificate // the root certificate
	CAKey  crypto.Signer     // its key
	CAFile string            // PEM file holding CA, for ClientVerify.CAFile
}

// NewTestPKI makes a CA valid for a day and writes it to dir/ca.pem (dir
// must exist; a test's t.TempDir() is meant). Keep dir apart from the store
// directories you test with, or the CA shows up as a store entry.
func NewTestPKI(dir string) (*TestPKI, error) {
	ca, key, err := CreateCA("kdsrv test CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "ca.pem")
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		return nil, fmt.Errorf("certstore: NewTestPKI: writing %s: %w", path, err)
	}
	return &TestPKI{CA: ca, CAKey: key, CAFile: path}, nil
}

// Issue returns a certificate for spec signed by the test CA, in memory.
func (p *TestPKI) Issue(spec CertSpec) (*Entry, error) {
	return IssueServerCert(p.CA, p.CAKey, spec)
}

// IssueTo issues a certificate for spec and adds it to store (see Add).
func (p *TestPKI) IssueTo(store Store, spec CertSpec) (*Entry, error) {
	e, err := p.Issue(spec)
	if err != nil {
		return nil, err
	}
	return Add(store, e, false)
}
