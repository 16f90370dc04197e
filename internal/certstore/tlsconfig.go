package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"kdsrv/internal/wire"
)

// cipherSuites are the TLS 1.2 suites offered and accepted: ECDHE key
// exchange with AEAD ciphers only. TLS 1.3 suites are all modern and not
// configurable in crypto/tls.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites both sides use.
func CipherSuites() []uint16 { return append([]uint16(nil), cipherSuites...) }

// ServerTLS builds the server side of an ssl/spipe transport: it presents e
// (with its chain), accepts TLS 1.2 and 1.3 only (1.3 is chosen whenever the
// client offers it), offers only ECDHE+AEAD suites in TLS 1.2, and never
// renegotiates (crypto/tls servers do not support renegotiation at all).
// Clients are not asked for certificates; they prove the password inside the
// session instead (see Binding).
func ServerTLS(e *Entry) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{e.TLSCertificate()},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS13,
		CipherSuites: CipherSuites(),
		ClientAuth:   tls.NoClientCert,
	}
}

// ClientVerify says how a client checks the server's certificate. At most
// one of Pin, Thumbprint and CAFile may be set; with none of them the system
// roots verify the chain and ServerName.
//
// Pinning (Pin or Thumbprint) trusts exactly one leaf certificate, whatever
// host name, issuer or dates it has: the TLS handshake still proves that the
// server holds that certificate's key. CA-file and system-root verification
// check the chain, the dates and that the certificate is valid for ServerName.
type ClientVerify struct {
	// Thumbprint pins the server's leaf by SHA-1 (40 hex digits) or SHA-256
	// (64 hex digits) thumbprint; spaces, colons and case are ignored.
	Thumbprint string
	// CAFile is a PEM file of root certificates that must have issued the
	// server's certificate.
	CAFile string
	// Pin is a copy of the server's certificate from the client's own store
	// (see FindPeer); the leaf is pinned by its SHA-256 fingerprint.
	Pin *Entry
	// ServerName is the host name (or IP address) the client dialled. It
	// is sent as SNI, and is required for CA-file and system-root
	// verification.
	ServerName string
}

// mode returns which verification v asks for, or an error if it asks for more
// than one.
func (v ClientVerify) mode() (string, error) {
	var set []string
	if v.Pin != nil {
		set = append(set, "a pinned certificate (certuser=/machuser=)")
	}
	if v.Thumbprint != "" {
		set = append(set, "thumbprint=")
	}
	if v.CAFile != "" {
		set = append(set, "cafile=")
	}
	switch len(set) {
	case 0:
		return "system", nil
	case 1:
		return set[0], nil
	}
	return "", &Error{Kind: ErrInvalid, Op: "client TLS",
		Detail: "give only one way to verify the server, not " + strings.Join(set, " and ")}
}

// ClientTLS builds the client side of an ssl/spipe transport from v: TLS 1.2
// minimum, the same cipher suites as ServerTLS, renegotiation refused, and
// the server checked as v says. A pin mismatch fails the handshake with an
// *Error of kind ErrPinMismatch naming the expected and presented
// certificates.
func ClientTLS(v ClientVerify) (*tls.Config, error) {
	if _, err := v.mode(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:    tls.VersionTLS12,
		MaxVersion:    tls.VersionTLS13,
		CipherSuites:  CipherSuites(),
		Renegotiation: tls.RenegotiateNever,
		ServerName:    v.ServerName,
	}
	switch {
	case v.Pin != nil:
		if v.Pin.Certificate == nil {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS", Detail: "the pinned entry has no certificate"}
		}
		p := pin{sha256: v.Pin.SHA256(), what: fmt.Sprintf("CN=%q thumbprint %s (SHA-256 %s) from %s",
			v.Pin.CommonName(), v.Pin.Thumbprint(), v.Pin.SHA256(), v.Pin.Source)}
		pinConfig(cfg, p)
	case v.Thumbprint != "":
		tp, ok := NormalizeThumbprint(v.Thumbprint)
		if !ok {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS", Name: v.Thumbprint,
				Detail: "thumbprint= must be 40 (SHA-1) or 64 (SHA-256) hex digits; spaces and colons are allowed"}
		}
		p := pin{what: "thumbprint " + tp}
		if len(tp) == 40 {
			p.sha1 = tp
		} else {
			p.sha256 = tp
		}
		pinConfig(cfg, p)
	case v.CAFile != "":
		if v.ServerName == "" {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS", Detail: "cafile= needs the server's host name to check the certificate against"}
		}
		data, err := readSmallFile(v.CAFile)
		if err != nil {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS", Name: v.CAFile,
				Detail: "cannot read the CA file given by cafile=", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS", Name: v.CAFile,
				Detail: "the CA file holds no PEM CERTIFICATE block"}
		}
		cfg.RootCAs = pool
	default:
		if v.ServerName == "" {
			return nil, &Error{Kind: ErrInvalid, Op: "client TLS",
				Detail: "verifying with the system roots needs the server's host name; or pin the server with thumbprint= or cafile="}
		}
	}
	return cfg, nil
}

// pin is the expected leaf of a pinned connection.
type pin struct {
	sha1, sha256 string // exactly one is set (lower-case hex)
	what         string // description for messages
}

// pinConfig replaces chain and host-name checks by a comparison of the
// leaf's thumbprint; crypto/tls still verifies that the server holds the
// leaf's private key.
func pinConfig(cfg *tls.Config, p pin) {
	cfg.InsecureSkipVerify = true // only the standard chain check is skipped; VerifyConnection below replaces it
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &Error{Kind: ErrPinMismatch, Op: "verify", Detail: "expected " + p.what + "; the server presented no certificate"}
		}
		leaf := cs.PeerCertificates[0]
		if (p.sha1 != "" && Thumbprint(leaf) == p.sha1) || (p.sha256 != "" && ThumbprintSHA256(leaf) == p.sha256) {
			return nil
		}
		return &Error{Kind: ErrPinMismatch, Op: "verify", Detail: fmt.Sprintf(
			"expected %s; the server presented subject %q, thumbprint %s (SHA-256 %s), valid %s to %s; if the server's certificate was replaced on purpose, pin the new thumbprint",
			p.what, leaf.Subject.String(), Thumbprint(leaf), ThumbprintSHA256(leaf),
			leaf.NotBefore.UTC().Format("2006-01-02"), leaf.NotAfter.UTC().Format("2006-01-02"))}
	}
}

// Channel binding parameters: the TLS exporter label and length used to bind
// the password proof of the wire protocol to one TLS session. They are the
// wire protocol's, so Binding and wire.TLSBinding agree.
const (
	BindingLabel = wire.TLSBindingLabel
	BindingSize  = wire.TLSBindingSize
)

// Binding returns the channel-binding value of a TLS connection: the
// RFC 5705 / RFC 8446 exporter with label BindingLabel, no context, and
// BindingSize bytes. Both ends of one connection get the same value; any
// other connection (including a man in the middle's two connections) gets a
// different one.
//
// Exporters are only safe in TLS 1.2 with the extended master secret
// extension (RFC 7627); crypto/tls refuses to export otherwise, and so does
// Binding. TLS 1.3 always allows it.
func Binding(cs tls.ConnectionState) ([]byte, error) {
	if !cs.HandshakeComplete {
		return nil, &Error{Kind: ErrInvalid, Op: "channel binding", Detail: "the TLS handshake has not completed"}
	}
	b, err := cs.ExportKeyingMaterial(BindingLabel, nil, BindingSize)
	if err != nil {
		return nil, &Error{Kind: ErrNotSupported, Op: "channel binding",
			Detail: "the peer negotiated TLS 1.2 without extended master secret; upgrade it to TLS 1.3 or enable extended master secret", Err: err}
	}
	return b, nil
}

// CheckProto validates the proto= value of an ssl/spipe transport. Only
// "tls1" (any case) is accepted; it negotiates TLS 1.2 or 1.3.
func CheckProto(p string) error {
	switch strings.ToLower(strings.TrimSpace(p)) {
	case "tls1":
		return nil
	case "ssl2", "ssl3", "pct1":
		return &Error{Kind: ErrBadProto, Op: "check proto", Name: p,
			Detail: "SSL 2.0, SSL 3.0 and PCT 1.0 are broken (RFC 6176, RFC 7568) and no longer offered; use proto=tls1, which negotiates TLS 1.2 or 1.3"}
	case "":
		return &Error{Kind: ErrBadProto, Op: "check proto", Detail: "proto= is empty; use proto=tls1"}
	}
	return &Error{Kind: ErrBadProto, Op: "check proto", Name: p,
		Detail: "unknown protocol; the only accepted value is tls1 (negotiates TLS 1.2 or 1.3)"}
}
