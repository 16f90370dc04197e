package certstore

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serverEntry makes a CA-issued server certificate for 127.0.0.1/localhost.
func serverEntry(t *testing.T, p *TestPKI, spec CertSpec) *Entry {
	t.Helper()
	e, err := p.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustClient(t *testing.T, v ClientVerify) *tls.Config {
	t.Helper()
	cfg, err := ClientTLS(v)
	if err != nil {
		t.Fatalf("ClientTLS(%+v): %v", v, err)
	}
	return cfg
}

// TestTLSVerification runs real handshakes over loopback TCP for every way a
// client can check the server.
func TestTLSVerification(t *testing.T) {
	p := newPKI(t)
	srv := serverEntry(t, p, CertSpec{CommonName: "kd-server"})
	rsaSrv := serverEntry(t, p, CertSpec{CommonName: "kd-rsa", RSA: true})
	otherPKI := newPKI(t)
	imposter := serverEntry(t, otherPKI, CertSpec{CommonName: "kd-server"})

	tests := []struct {
		name    string
		server  *Entry
		client  ClientVerify
		tweak   func(*tls.Config)
		wantErr []string // substrings of the client error; nil: success
		kind    error
	}{
		{name: "sha1 thumbprint as the snap-in shows it", server: srv,
			client: ClientVerify{Thumbprint: strings.ToUpper(spacedThumbprint(srv.Thumbprint()))}},
		{name: "sha256 thumbprint with colons", server: srv,
			client: ClientVerify{Thumbprint: strings.ReplaceAll(spacedThumbprint(srv.SHA256()), " ", ":")}},
		{name: "pinned entry, no host name needed", server: srv,
			client: ClientVerify{Pin: &Entry{Certificate: srv.Certificate, Source: "client store"}}},
		{name: "pin ignores host name", server: srv,
			client: ClientVerify{Thumbprint: srv.Thumbprint(), ServerName: "not-the-name.invalid"}},
		{name: "CA file and IP server name", server: srv,
			client: ClientVerify{CAFile: p.CAFile, ServerName: "127.0.0.1"}},
		{name: "CA file and DNS server name", server: srv,
			client: ClientVerify{CAFile: p.CAFile, ServerName: "localhost"}},
		{name: "RSA server, TLS 1.3", server: rsaSrv,
			client: ClientVerify{Thumbprint: rsaSrv.Thumbprint()}},
		{name: "RSA server, TLS 1.2", server: rsaSrv,
			client: ClientVerify{Thumbprint: rsaSrv.Thumbprint()},
			tweak:  func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{name: "ECDSA server, TLS 1.2", server: srv,
			client: ClientVerify{CAFile: p.CAFile, ServerName: "localhost"},
			tweak:  func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{name: "wrong sha1 pin", server: imposter,
			client:  ClientVerify{Thumbprint: srv.Thumbprint()},
			wantErr: []string{"expected thumbprint " + srv.Thumbprint(), "presented", imposter.Thumbprint(), imposter.SHA256(), "CN=kd-server"},
			kind:    ErrPinMismatch},
		{name: "wrong pinned entry", server: imposter,
			client:  ClientVerify{Pin: &Entry{Certificate: srv.Certificate, Source: "client store"}},
			wantErr: []string{srv.Thumbprint(), srv.SHA256(), "client store", imposter.Thumbprint()},
			kind:    ErrPinMismatch},
		{name: "CA file of another CA", server: imposter,
			client:  ClientVerify{CAFile: p.CAFile, ServerName: "127.0.0.1"},
			wantErr: []string{"unknown authority"}},
		{name: "CA file, wrong host name", server: srv,
			client:  ClientVerify{CAFile: p.CAFile, ServerName: "elsewhere.example"},
			wantErr: []string{"elsewhere.example"}},
		{name: "TLS 1.1 client refused", server: srv,
			client: ClientVerify{Thumbprint: srv.Thumbprint()},
			tweak: func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
				c.CipherSuites = nil
			},
			wantErr: []string{"protocol version"}},
		{name: "CBC-only TLS 1.2 client refused", server: srv,
			client: ClientVerify{Thumbprint: srv.Thumbprint()},
			tweak: func(c *tls.Config) {
				c.MaxVersion = tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
			},
			wantErr: []string{"handshake failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := mustClient(t, tt.client)
			if tt.tweak != nil {
				tt.tweak(cli)
			}
			sr, cr := tlsPair(t, ServerTLS(tt.server), cli)
			if tt.wantErr == nil {
				if cr.err != nil || sr.err != nil {
					t.Fatalf("client error %v, server error %v", cr.err, sr.err)
				}
				if len(cr.binding) != BindingSize || !bytes.Equal(cr.binding, sr.binding) {
					t.Fatalf("bindings differ: client %x server %x", cr.binding, sr.binding)
				}
				if tt.tweak == nil && cr.state.Version != tls.VersionTLS13 {
					t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(cr.state.Version))
				}
				return
			}
			if cr.err == nil {
				t.Fatalf("handshake succeeded, want error with %q", tt.wantErr)
			}
			if sr.err == nil {
				t.Errorf("server accepted the connection")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(cr.err.Error(), w) {
					t.Errorf("client error lacks %q: %v", w, cr.err)
				}
			}
			if tt.kind != nil {
				wantKind(t, cr.err, tt.kind)
			}
			t.Log(cr.err)
		})
	}
}

// TestBindingPerConnection: the same server and client configuration gives
// different binding values on two connections.
func TestBindingPerConnection(t *testing.T) {
	p := newPKI(t)
	srv := serverEntry(t, p, CertSpec{CommonName: "bind"})
	scfg, ccfg := ServerTLS(srv), mustClient(t, ClientVerify{Thumbprint: srv.Thumbprint()})
	s1, c1 := tlsPair(t, scfg, ccfg)
	s2, c2 := tlsPair(t, scfg, ccfg)
	for _, r := range []handshakeResult{s1, c1, s2, c2} {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	if !bytes.Equal(s1.binding, c1.binding) || !bytes.Equal(s2.binding, c2.binding) {
		t.Fatal("the two ends of one connection disagree")
	}
	if bytes.Equal(c1.binding, c2.binding) {
		t.Fatal("two connections have the same binding")
	}
	if _, err := Binding(tls.ConnectionState{}); err == nil {
		t.Fatal("Binding before the handshake succeeded")
	}
}

func TestServerTLSSettings(t *testing.T) {
	p := newPKI(t)
	srv := serverEntry(t, p, CertSpec{CommonName: "settings"})
	cfg := ServerTLS(srv)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 {
		t.Errorf("versions %x..%x", cfg.MinVersion, cfg.MaxVersion)
	}
	secure := map[uint16]bool{}
	for _, cs := range tls.CipherSuites() {
		secure[cs.ID] = true
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !secure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || strings.Contains(name, "CBC") {
			t.Errorf("cipher suite %s is not modern", name)
		}
	}
	if len(cfg.Certificates) != 1 || !bytes.Equal(cfg.Certificates[0].Certificate[0], srv.Certificate.Raw) {
		t.Error("server does not present the entry")
	}
	cli := mustClient(t, ClientVerify{Thumbprint: srv.Thumbprint()})
	if cli.Renegotiation != tls.RenegotiateNever || cli.MinVersion != tls.VersionTLS12 {
		t.Errorf("client renegotiation %v, min version %x", cli.Renegotiation, cli.MinVersion)
	}
}

func TestClientTLSInvalid(t *testing.T) {
	p := newPKI(t)
	srv := serverEntry(t, p, CertSpec{CommonName: "x"})
	notPEM := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    ClientVerify
		want string
	}{
		{"two modes", ClientVerify{Thumbprint: srv.Thumbprint(), CAFile: p.CAFile, ServerName: "h"}, "only one way"},
		{"three modes", ClientVerify{Thumbprint: srv.Thumbprint(), CAFile: p.CAFile, Pin: srv}, "only one way"},
		{"short thumbprint", ClientVerify{Thumbprint: "ab cd"}, "40 (SHA-1) or 64 (SHA-256)"},
		{"CA file without server name", ClientVerify{CAFile: p.CAFile}, "host name"},
		{"system roots without server name", ClientVerify{}, "host name"},
		{"missing CA file", ClientVerify{CAFile: filepath.Join(t.TempDir(), "none.pem"), ServerName: "h"}, "cannot read the CA file"},
		{"CA file without certificates", ClientVerify{CAFile: notPEM, ServerName: "h"}, "no PEM CERTIFICATE"},
		{"pin without certificate", ClientVerify{Pin: &Entry{}}, "no certificate"},
	}
	for _, tt := range tests {
		_, err := ClientTLS(tt.v)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		wantKind(t, err, ErrInvalid)
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v lacks %q", tt.name, err, tt.want)
		}
	}
	// System roots with a server name is a valid configuration.
	cfg, err := ClientTLS(ClientVerify{ServerName: "kd.example"})
	if err != nil || cfg.RootCAs != nil || cfg.InsecureSkipVerify || cfg.ServerName != "kd.example" {
		t.Errorf("system-root config = %+v, %v", cfg, err)
	}
	// A CA-file config keeps the standard verification.
	cfg = mustClient(t, ClientVerify{CAFile: p.CAFile, ServerName: "h"})
	if cfg.InsecureSkipVerify || cfg.RootCAs == nil {
		t.Error("CA-file config skips verification")
	}
}

func TestCheckProto(t *testing.T) {
	tests := []struct {
		proto string
		ok    bool
		want  string
	}{
		{"tls1", true, ""},
		{"TLS1", true, ""},
		{"ssl2", false, "broken"},
		{"SSL3", false, "broken"},
		{"pct1", false, "tls1"},
		{"tls13", false, "unknown"},
		{"", false, "empty"},
	}
	for _, tt := range tests {
		err := CheckProto(tt.proto)
		if (err == nil) != tt.ok {
			t.Errorf("CheckProto(%q) = %v", tt.proto, err)
			continue
		}
		if err != nil {
			wantKind(t, err, ErrBadProto)
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "TLS 1.2 or 1.3") && tt.proto != "" {
				t.Errorf("CheckProto(%q) = %v, want mention of %q and TLS 1.2 or 1.3", tt.proto, err, tt.want)
			}
		}
	}
}
