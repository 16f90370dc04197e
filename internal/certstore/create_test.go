package certstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestCreateSelfSigned: one call makes a certificate that Find locates, that
// ServerTLS serves to a pinned client, in files with safe modes.
func TestCreateSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "certs")
	s := DirStore(Machine, dir)
	e, err := CreateSelfSigned(s, "kd server", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := e.Certificate
	if c.Subject.CommonName != "kd server" || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || c.IsCA {
		t.Errorf("certificate CN %q EKU %v CA %v", c.Subject.CommonName, c.ExtKeyUsage, c.IsCA)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if !slices.Contains(c.DNSNames, "localhost") || !slices.ContainsFunc(c.IPAddresses, net.IP.IsLoopback) || len(c.IPAddresses) != 2 {
		t.Errorf("SANs %v %v lack the defaults", c.DNSNames, c.IPAddresses)
	}
	if h, _ := os.Hostname(); h != "" && h != "localhost" && !slices.Contains(c.DNSNames, h) {
		t.Errorf("SANs %v lack host name %q", c.DNSNames, h)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < DefaultValidity || d > DefaultValidity+time.Hour {
		t.Errorf("validity %v, want about %v", d, DefaultValidity)
	}
	wantFiles := map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "kd_server.key"): 0o600, filepath.Join(dir, "kd_server.crt"): 0o644}
	if e.Source != filepath.Join(dir, "kd_server.crt") || e.KeySource != filepath.Join(dir, "kd_server.key") {
		t.Errorf("Source %q KeySource %q", e.Source, e.KeySource)
	}
	if runtime.GOOS != "windows" {
		for p, want := range wantFiles {
			if got := fileMode(t, p); got != want {
				t.Errorf("%s mode %v, want %v", p, got, want)
			}
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	found, err := Find(s, "KD SERVER")
	if err != nil || found.Thumbprint() != e.Thumbprint() {
		t.Fatalf("Find = %v, %v", found, err)
	}
	sr, cr := tlsPair(t, ServerTLS(found), mustClient(t, ClientVerify{Thumbprint: e.Thumbprint()}))
	if sr.err != nil || cr.err != nil {
		t.Fatalf("server %v, client %v", sr.err, cr.err)
	}
	// The certificate is its own CA for cafile= and covers 127.0.0.1.
	sr, cr = tlsPair(t, ServerTLS(found), mustClient(t, ClientVerify{CAFile: e.Source, ServerName: "127.0.0.1"}))
	if sr.err != nil || cr.err != nil {
		t.Fatalf("cafile=self: server %v, client %v", sr.err, cr.err)
	}

	// No silent overwrite, by name or by file.
	_, err = CreateSelfSigned(s, "kd server", nil, 0)
	wantKind(t, err, ErrExists)
	if !strings.Contains(err.Error(), e.Thumbprint()) {
		t.Errorf("ErrExists message lacks the existing thumbprint: %v", err)
	}
	again, err := Create(s, CreateOptions{Name: "kd server", Overwrite: true, ValidFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if again.Thumbprint() == e.Thumbprint() {
		t.Fatal("overwrite kept the old certificate")
	}
	if found, err := Find(s, "kd server"); err != nil || found.Thumbprint() != again.Thumbprint() {
		t.Fatalf("after overwrite Find = %v, %v", found, err)
	}
}

func TestCreateHostsAndErrors(t *testing.T) {
	s := DirStore(User, t.TempDir())
	e, err := CreateSelfSigned(s, "hosts", []string{"kd.example", "10.1.2.3", "[fe80::1]", "*.lab.example"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Certificate.DNSNames; !slices.Equal(got, []string{"kd.example", "*.lab.example"}) {
		t.Errorf("DNS SANs %v", got)
	}
	if got := e.Certificate.IPAddresses; len(got) != 2 || !got[0].Equal(net.ParseIP("10.1.2.3")) || !got[1].Equal(net.ParseIP("fe80::1")) {
		t.Errorf("IP SANs %v", got)
	}
	// A certificate of the same name in another file blocks even Overwrite.
	p := newPKI(t)
	other, _ := p.Issue(CertSpec{CommonName: "taken"})
	writePEM(t, s.Path, "elsewhere.pem", certBlock(other.Certificate), keyBlock(t, other))
	tests := []struct {
		name  string
		opts  CreateOptions
		kind  error
		want  string
		store Store
	}{
		{"empty name", CreateOptions{Name: ""}, ErrInvalid, "empty", s},
		{"padded name", CreateOptions{Name: " x"}, ErrInvalid, "space", s},
		{"long name", CreateOptions{Name: strings.Repeat("n", 65)}, ErrInvalid, "64", s},
		{"control char", CreateOptions{Name: "a\nb"}, ErrInvalid, "control", s},
		{"bad host", CreateOptions{Name: "h", Hosts: []string{"http://x"}}, ErrInvalid, "http://x", s},
		{"same name other file", CreateOptions{Name: "TAKEN", Overwrite: true}, ErrExists, "elsewhere.pem", s},
	}
	for _, tt := range tests {
		_, err := Create(tt.store, tt.opts)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		wantKind(t, err, tt.kind)
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v lacks %q", tt.name, err, tt.want)
		}
	}
}

func TestFileBase(t *testing.T) {
	tests := map[string]string{
		"kd server":       "kd_server",
		"../../etc/x":     "_.._etc_x",
		"...":             "cert",
		"srv.example.com": "srv.example.com",
		"a/b\\c:d":        "a_b_c_d",
	}
	for in, want := range tests {
		if got := fileBase(in); got != want {
			t.Errorf("fileBase(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(fileBase(in), `/\`) {
			t.Errorf("fileBase(%q) has a separator", in)
		}
	}
}

func TestAddRefusesBadEntries(t *testing.T) {
	p := newPKI(t)
	a, _ := p.Issue(CertSpec{CommonName: "a"})
	b, _ := p.Issue(CertSpec{CommonName: "b"})
	s := DirStore(User, t.TempDir())
	_, err := Add(s, &Entry{Certificate: a.Certificate, Key: b.Key}, false)
	wantKind(t, err, ErrKeyMismatch)
	_, err = Add(s, &Entry{Certificate: a.Certificate}, false)
	wantKind(t, err, ErrInvalid)
}
