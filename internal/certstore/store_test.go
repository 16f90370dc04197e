package certstore

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStoreDirResolution(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("default stores are system stores on Windows")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv(EnvUserCerts, "")
	t.Setenv(EnvMachineCerts, "")
	check := func(s Store, want string) {
		t.Helper()
		got, err := s.Dir()
		if err != nil || got != want {
			t.Errorf("%+v.Dir() = %q, %v; want %q", s, got, err, want)
		}
	}
	check(UserStore(), filepath.Join(home, ".config", "kdsrv", "certs"))
	check(MachineStore(), "/etc/kdsrv/certs")
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	check(UserStore(), filepath.Join(xdg, "kdsrv", "certs"))
	t.Setenv("XDG_CONFIG_HOME", "relative/ignored")
	check(UserStore(), filepath.Join(home, ".config", "kdsrv", "certs"))
	t.Setenv(EnvUserCerts, "/u/certs")
	t.Setenv(EnvMachineCerts, "/m/certs")
	check(UserStore(), "/u/certs")
	check(MachineStore(), "/m/certs")
	check(DirStore(Machine, "/explicit/"), "/explicit")
	if s := MachineStore().String(); s != "machine store /m/certs" {
		t.Errorf("String() = %q", s)
	}
}

func TestNormalizeThumbprint(t *testing.T) {
	const want = "a909502dd82ae41433e6f83886b00d4277a32a7b"
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"a9 09 50 2d d8 2a e4 14 33 e6 f8 38 86 b0 0d 42 77 a3 2a 7b", want, true},
		{"A909502DD82AE41433E6F83886B00D4277A32A7B", want, true},
		{"a9:09:50:2d:d8:2a:e4:14:33:e6:f8:38:86:b0:0d:42:77:a3:2a:7b", want, true},
		{"\u200ea9 09 50 2d d8 2a e4 14 33 e6 f8 38 86 b0 0d 42 77 a3 2a 7b", want, true},
		{strings.Repeat("Ab", 32), strings.Repeat("ab", 32), true},
		{"a9 09 50", "", false},
		{"localhost", "", false},
		{strings.Repeat("g", 40), "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeThumbprint(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("NormalizeThumbprint(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestFindByNameAndThumbprint finds certificates in the user and the machine
// store (temporary directories named by the environment variables) by common
// name, friendly name and thumbprints in every accepted spelling.
func TestFindByNameAndThumbprint(t *testing.T) {
	p := newPKI(t)
	t.Setenv(EnvUserCerts, t.TempDir())
	t.Setenv(EnvMachineCerts, t.TempDir())
	user := issueTo(t, p, UserStore(), CertSpec{CommonName: "alpha.example", FriendlyName: "My Alpha"})
	mach := issueTo(t, p, MachineStore(), CertSpec{CommonName: "beta.example"})

	spaced := func(e *Entry) string { return spacedThumbprint(e.Thumbprint()) }
	colons := func(e *Entry) string { return strings.ReplaceAll(spaced(e), " ", ":") }
	tests := []struct {
		store Store
		name  string
		want  *Entry
	}{
		{UserStore(), "alpha.example", user},
		{UserStore(), "ALPHA.Example", user},
		{UserStore(), "my alpha", user},
		{UserStore(), user.Thumbprint(), user},
		{UserStore(), strings.ToUpper(spaced(user)), user},
		{UserStore(), colons(user), user},
		{UserStore(), "\u200e" + spaced(user), user},
		{UserStore(), user.SHA256(), user},
		{MachineStore(), "Beta.Example", mach},
		{MachineStore(), strings.ToUpper(colons(mach)), mach},
		{MachineStore(), " " + mach.Thumbprint() + " ", mach},
	}
	for _, tt := range tests {
		got, err := Find(tt.store, tt.name)
		if err != nil {
			t.Errorf("Find(%s, %q): %v", tt.store, tt.name, err)
			continue
		}
		if got.Thumbprint() != tt.want.Thumbprint() || got.Key == nil {
			t.Errorf("Find(%s, %q) = %v, want %v with key", tt.store, tt.name, got, tt.want)
		}
	}
	// Each store holds only its own certificate.
	if _, err := Find(MachineStore(), "alpha.example"); err == nil {
		t.Error("alpha.example found in the machine store")
	}
	if _, err := Find(UserStore(), mach.Thumbprint()); err == nil {
		t.Error("the machine certificate found in the user store by thumbprint")
	}
}

// TestFindErrors shows every failure of Find with the content of its message.
func TestFindErrors(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	tests := []struct {
		name  string
		setup func(t *testing.T, s Store) (lookFor string, want []string)
		kind  error
	}{
		{"empty store", func(t *testing.T, s Store) (string, []string) {
			return "nothing", []string{"the store is empty", "kdsrv cert create"}
		}, ErrNotFound},
		{"not found lists contents", func(t *testing.T, s Store) (string, []string) {
			a := issueTo(t, p, s, CertSpec{CommonName: "one"})
			b := issueTo(t, p, s, CertSpec{CommonName: "two"})
			return "three", []string{`"three"`, `CN="one"`, a.Thumbprint(), `CN="two"`, b.Thumbprint()}
		}, ErrNotFound},
		{"unknown thumbprint", func(t *testing.T, s Store) (string, []string) {
			a := issueTo(t, p, s, CertSpec{CommonName: "one"})
			return strings.Repeat("00", 20), []string{a.Thumbprint()}
		}, ErrNotFound},
		{"ambiguous lists thumbprints", func(t *testing.T, s Store) (string, []string) {
			a := issueTo(t, p, s, CertSpec{CommonName: "twin", FriendlyName: "twin-a"})
			b := issueTo(t, p, s, CertSpec{CommonName: "twin", FriendlyName: "twin-b"})
			return "Twin", []string{"2 certificates", a.Thumbprint(), b.Thumbprint(), "by its thumbprint"}
		}, ErrAmbiguous},
		{"key missing", func(t *testing.T, s Store) (string, []string) {
			e, _ := p.Issue(CertSpec{CommonName: "nokey"})
			path := writePEM(t, s.Path, "nokey.crt", certBlock(e.Certificate))
			return "nokey", []string{path, "no private key", "0600"}
		}, ErrKeyMissing},
		{"key mismatch in .key file", func(t *testing.T, s Store) (string, []string) {
			e, _ := p.Issue(CertSpec{CommonName: "wrongkey"})
			other, _ := p.Issue(CertSpec{CommonName: "other"})
			writePEM(t, s.Path, "wrongkey.crt", certBlock(e.Certificate))
			kp := writePEM(t, s.Path, "wrongkey.key", keyBlock(t, other))
			return "wrongkey", []string{kp, "belongs to another certificate"}
		}, ErrKeyMismatch},
		{"key mismatch in same file", func(t *testing.T, s Store) (string, []string) {
			e, _ := p.Issue(CertSpec{CommonName: "bundle"})
			other, _ := p.Issue(CertSpec{CommonName: "other"})
			path := writePEM(t, s.Path, "bundle.pem", certBlock(e.Certificate), keyBlock(t, other))
			return "bundle", []string{path, "not the certificate's"}
		}, ErrKeyMismatch},
		{"expired", func(t *testing.T, s Store) (string, []string) {
			nb, na := now.Add(-48*time.Hour), now.Add(-24*time.Hour)
			issueTo(t, p, s, CertSpec{CommonName: "old", NotBefore: nb, NotAfter: na})
			return "old", []string{na.UTC().Format(time.RFC3339), nb.UTC().Format(time.RFC3339), "renew"}
		}, ErrExpired},
		{"not yet valid", func(t *testing.T, s Store) (string, []string) {
			nb, na := now.Add(24*time.Hour), now.Add(48*time.Hour)
			issueTo(t, p, s, CertSpec{CommonName: "future", NotBefore: nb, NotAfter: na})
			return "future", []string{nb.UTC().Format(time.RFC3339), "clock"}
		}, ErrNotYetValid},
		{"client auth only", func(t *testing.T, s Store) (string, []string) {
			issueTo(t, p, s, CertSpec{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return "client", []string{"clientAuth", "1.3.6.1.5.5.7.3.1"}
		}, ErrNoServerAuth},
		{"both expired: newest reported", func(t *testing.T, s Store) (string, []string) {
			issueTo(t, p, s, CertSpec{CommonName: "gone", FriendlyName: "g1", NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-48 * time.Hour)})
			e := issueTo(t, p, s, CertSpec{CommonName: "gone", FriendlyName: "g2", NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
			return "gone", []string{e.Thumbprint(), "g2.crt"}
		}, ErrExpired},
		{"encrypted key explained", func(t *testing.T, s Store) (string, []string) {
			e, _ := p.Issue(CertSpec{CommonName: "locked"})
			writePEM(t, s.Path, "locked.crt", certBlock(e.Certificate))
			writePEM(t, s.Path, "locked.key", &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
			return "locked", []string{"encrypted", "openssl pkey"}
		}, ErrKeyMissing},
		{"empty name", func(t *testing.T, s Store) (string, []string) {
			return "  ", []string{"no certificate name"}
		}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DirStore(User, t.TempDir())
			name, want := tt.setup(t, s)
			e, err := Find(s, name)
			if err == nil {
				t.Fatalf("Find(%q) = %v, want error", name, e)
			}
			wantKind(t, err, tt.kind)
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(want, s.Path) {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			checkNoSecret(t, msg)
		})
	}
}

func TestFindUnreadableStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Find(DirStore(User, missing), "x")
	wantKind(t, err, ErrUnreadable)
	if !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("message: %v", err)
	}
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("permission bits do not stop this user")
	}
	locked := t.TempDir()
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(locked, 0o700) })
	_, err = Find(DirStore(User, locked), "x")
	wantKind(t, err, ErrUnreadable)
	if !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("message: %v", err)
	}
}

// TestFindAccepts covers the certificates Find must accept: pairing by
// public key whatever the file names, chains, EKU variants, friendly names
// from both sources, and the renewal case.
func TestFindAccepts(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	tests := []struct {
		name  string
		setup func(t *testing.T, s Store) (lookFor string, want *Entry)
	}{
		{"key in an unrelated file", func(t *testing.T, s Store) (string, *Entry) {
			e, _ := p.Issue(CertSpec{CommonName: "server"})
			writePEM(t, s.Path, "server.crt", certBlock(e.Certificate))
			writePEM(t, s.Path, "zzz-private.key", keyBlock(t, e))
			return "server", e
		}},
		{"cert, chain and key in one pem", func(t *testing.T, s Store) (string, *Entry) {
			e, _ := p.Issue(CertSpec{CommonName: "all-in-one"})
			writePEM(t, s.Path, "bundle.pem", certBlock(e.Certificate), certBlock(p.CA), keyBlock(t, e))
			return "all-in-one", e
		}},
		{"SEC 1 EC key", func(t *testing.T, s Store) (string, *Entry) {
			e, _ := p.Issue(CertSpec{CommonName: "sec1"})
			writePEM(t, s.Path, "sec1.crt", certBlock(e.Certificate))
			der, err := x509.MarshalECPrivateKey(mustKey[*ecdsa.PrivateKey](t, e))
			if err != nil {
				t.Fatal(err)
			}
			writePEM(t, s.Path, "k.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
			return "sec1", e
		}},
		{"RSA PKCS#1 key", func(t *testing.T, s Store) (string, *Entry) {
			e, _ := p.Issue(CertSpec{CommonName: "rsa", RSA: true})
			writePEM(t, s.Path, "rsa.cer", certBlock(e.Certificate))
			writePEM(t, s.Path, "rsa.key", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(mustKey[*rsa.PrivateKey](t, e))})
			return "rsa", e
		}},
		{"no EKU extension", func(t *testing.T, s Store) (string, *Entry) {
			return "noeku", issueTo(t, p, s, CertSpec{CommonName: "noeku", NoExtKeyUsage: true})
		}},
		{"any EKU", func(t *testing.T, s Store) (string, *Entry) {
			return "any", issueTo(t, p, s, CertSpec{CommonName: "any", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		}},
		{"client and server EKU", func(t *testing.T, s Store) (string, *Entry) {
			return "both", issueTo(t, p, s, CertSpec{CommonName: "both", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}})
		}},
		{"friendly name sidecar", func(t *testing.T, s Store) (string, *Entry) {
			return "Production Server", issueTo(t, p, s, CertSpec{CommonName: "srv1.example", FriendlyName: "Production Server"})
		}},
		{"friendly name PEM header", func(t *testing.T, s Store) (string, *Entry) {
			e, _ := p.Issue(CertSpec{CommonName: "hdr.example"})
			b := certBlock(e.Certificate)
			b.Headers = map[string]string{FriendlyNameHeader: "Header Name"}
			writePEM(t, s.Path, "hdr.crt", b, keyBlock(t, e))
			return "header name", e
		}},
		{"renewed next to expired", func(t *testing.T, s Store) (string, *Entry) {
			issueTo(t, p, s, CertSpec{CommonName: "renewed", FriendlyName: "renewed-old", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
			return "renewed", issueTo(t, p, s, CertSpec{CommonName: "renewed", FriendlyName: "renewed-new"})
		}},
		{"same certificate in two files", func(t *testing.T, s Store) (string, *Entry) {
			e := issueTo(t, p, s, CertSpec{CommonName: "dup"})
			writePEM(t, s.Path, "copy-of-dup.pem", certBlock(e.Certificate))
			return "dup", e
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DirStore(User, t.TempDir())
			name, want := tt.setup(t, s)
			got, err := Find(s, name)
			if err != nil {
				t.Fatalf("Find(%q): %v", name, err)
			}
			if got.Thumbprint() != want.Thumbprint() {
				t.Fatalf("Find(%q) = %v, want %v", name, got, want)
			}
			if got.Key == nil || !publicKeyEqual(got.Certificate.PublicKey, got.Key) {
				t.Fatalf("Find(%q) returned no matching key", name)
			}
			checkNoSecret(t, got.String())
		})
	}
}

func TestFindChainIsServed(t *testing.T) {
	p := newPKI(t)
	s := DirStore(User, t.TempDir())
	e, _ := p.Issue(CertSpec{CommonName: "chained"})
	writePEM(t, s.Path, "chained.pem", certBlock(e.Certificate), certBlock(p.CA), keyBlock(t, e))
	got, err := Find(s, "chained")
	if err != nil {
		t.Fatal(err)
	}
	tc := got.TLSCertificate()
	if len(tc.Certificate) != 2 || string(tc.Certificate[1]) != string(p.CA.Raw) {
		t.Fatalf("TLS certificate chain has %d certificates, want leaf + CA", len(tc.Certificate))
	}
}

func TestFindPeer(t *testing.T) {
	p := newPKI(t)
	s := DirStore(User, t.TempDir())
	e, _ := p.Issue(CertSpec{CommonName: "remote-server", NotAfter: time.Now().Add(-time.Minute), NotBefore: time.Now().Add(-time.Hour)})
	writePEM(t, s.Path, "remote.crt", certBlock(e.Certificate)) // no key, expired: fine for pinning
	got, err := FindPeer(s, "REMOTE-SERVER")
	if err != nil {
		t.Fatal(err)
	}
	if got.Thumbprint() != e.Thumbprint() || got.Key != nil {
		t.Fatalf("FindPeer = %v", got)
	}
	_, err = FindPeer(s, "absent")
	wantKind(t, err, ErrNotFound)
}
