package kdsrvcli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"kdsrv/internal/certstore"
)

func runCert(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), append([]string{"cert"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var thumbRE = regexp.MustCompile(`thumbprint\s+([0-9a-f]{40}) \(SHA-1\)`)

// TestCertCreateAndList: "kdsrv cert create" makes a certificate that
// certstore finds for a server by name and by the printed thumbprint, and
// "kdsrv cert list" shows it.
func TestCertCreateAndList(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCert(t, "create", "kd-lab", "-store", dir, "-host", "lab1.example,10.0.0.5", "-host", "localhost", "-days", "30")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m := thumbRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no thumbprint in:\n%s", out)
	}
	tp := m[1]
	store := certstore.DirStore(certstore.User, dir)
	for _, name := range []string{"kd-lab", "KD-LAB", tp, strings.ToUpper(tp)} {
		e, err := certstore.Find(store, name)
		if err != nil {
			t.Fatalf("find %q: %v", name, err)
		}
		if e.Thumbprint() != tp {
			t.Fatalf("find %q: thumbprint %s", name, e.Thumbprint())
		}
		if got := strings.Join(e.Certificate.DNSNames, ","); got != "lab1.example,localhost" {
			t.Errorf("DNS names %q", got)
		}
	}
	for _, want := range []string{
		"kdsrv -t ssl:proto=tls1,certuser=kd-lab,port=5005",
		"server=lab1.example,port=5005,thumbprint=" + tp,
		certstore.EnvUserCerts + "=" + dir,
		filepath.Join(dir, "kd-lab.key") + " (mode 0600)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runCert(t, "list", "-store", dir)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	if !regexp.MustCompile(`kd-lab\s+-\s+` + tp + `\s+\d{4}-\d\d-\d\d\s+yes\s+usable`).MatchString(out) {
		t.Errorf("list output:\n%s", out)
	}

	// Never replaced silently; -force replaces it.
	code, _, errs = runCert(t, "create", "kd-lab", "-store", dir)
	if code != 1 || !strings.Contains(errs, "already exists") {
		t.Fatalf("second create: exit %d: %s", code, errs)
	}
	code, out, errs = runCert(t, "-force", "create", "kd-lab", "-store", dir)
	if code != 2 {
		t.Fatalf("flag before the command: exit %d: %s %s", code, out, errs)
	}
	code, out, errs = runCert(t, "create", "-force", "kd-lab", "-store", dir)
	if code != 0 {
		t.Fatalf("create -force: exit %d: %s", code, errs)
	}
	if m := thumbRE.FindStringSubmatch(out); m == nil || m[1] == tp {
		t.Fatalf("-force did not make a new certificate:\n%s", out)
	}
}

// TestCertCreateMachineStoreFromEnv: -machine writes into the machine store
// named by KDSRV_MACHINE_CERTS, and the example uses machuser=; a name the
// -t grammar cannot carry is replaced by the thumbprint in the example.
func TestCertCreateMachineStoreFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(certstore.EnvMachineCerts, dir)
	code, out, errs := runCert(t, "create", "-machine", "lab server, rack 2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m := thumbRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no thumbprint in:\n%s", out)
	}
	if !strings.Contains(out, "ssl:proto=tls1,machuser="+m[1]+",port=5005") {
		t.Errorf("example should name the certificate by thumbprint:\n%s", out)
	}
	if _, err := certstore.Find(certstore.MachineStore(), "Lab Server, Rack 2"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCert(t, "list", "-machine")
	if code != 0 || !strings.Contains(out, "lab server, rack 2") || !strings.Contains(out, m[1]) {
		t.Fatalf("list -machine: exit %d:\n%s", code, out)
	}
}

func TestCertUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "missing command"},
		{[]string{"frob"}, 2, "unknown command \"frob\""},
		{[]string{"create", "-store", dir}, 2, "missing NAME"},
		{[]string{"create", "a", "b", "-store", dir}, 2, "one NAME only"},
		{[]string{"create", "a", "-days", "0", "-store", dir}, 2, "-days must be from 1"},
		{[]string{"create", "a", "-host", "bad host", "-store", dir}, 1, "neither an IP address nor a DNS name"},
		{[]string{"list", "extra", "-store", dir}, 2, "unexpected argument"},
		{[]string{"list", "-nope"}, 2, "flag provided but not defined"},
	}
	for _, tc := range tests {
		code, _, errs := runCert(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("cert %q: exit %d, stderr %q; want exit %d with %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	code, out, _ := runCert(t, "list", "-store", dir)
	if code != 0 || !strings.Contains(out, "holds no certificates") {
		t.Errorf("empty list: exit %d: %s", code, out)
	}
	code, out, _ = runCert(t, "help")
	if code != 0 || !strings.Contains(out, "kdsrv cert create NAME") {
		t.Errorf("help: exit %d: %s", code, out)
	}
}

func TestExampleHost(t *testing.T) {
	tests := []struct {
		hosts []string
		want  string
	}{
		{[]string{"localhost", "lab1", "127.0.0.1"}, "lab1"},
		{[]string{"localhost", "127.0.0.1", "::1"}, "localhost"},
		{[]string{"10.0.0.5"}, "10.0.0.5"},
		{nil, "HOST"},
	}
	for _, tc := range tests {
		if got := exampleHost(tc.hosts); got != tc.want {
			t.Errorf("exampleHost(%q) = %q, want %q", tc.hosts, got, tc.want)
		}
	}
}
