package kdnet

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Facts of the captured Windows 8.1 session (testdata/capture, key 1.1.1.1).
const (
	captureKey      = "1.1.1.1"
	captureDataKey  = "6d41dd0561a9f887afd8e82b2527e19ff800011075ff2ee6904553abbec778f2"
	captureBreakIn  = "4d44424702003d905343a507a805cb06ff6976ef1f3c15d4c904a93fc1c283e6b364c84d3d09"
	captureClient   = "0d4b1edab4e4cc54f76c47d10fd92ad8b54dc1cf2fd008900a95b694b3d4427f"
	captureHostRand = "3f0cc8115b19c1a6407a8d3a8f64c43d40ddbda888af9aa5b907bd5cee00d332"
	capturePokeSeq  = 2694
)

func key32(t testing.TB, s string) [KeySize]byte {
	t.Helper()
	b := testkit.Unhex(t, s)
	if len(b) != KeySize {
		t.Fatalf("key is %d bytes", len(b))
	}
	return [KeySize]byte(b)
}

// readHexFile reads a hex file under testdata.
func readHexFile(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata/%s: %v", name, err)
	}
	return testkit.Unhex(t, string(raw))
}

// golden compares got with testdata/golden/name (hex), or rewrites the file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	var sb strings.Builder
	h := hex.EncodeToString(got)
	for len(h) > 64 {
		sb.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	sb.WriteString(h + "\n")
	if testkit.Updating() {
		testkit.Golden(t, path, []byte(sb.String()))
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s unreadable (regenerate with go test ./internal/kdnet -update): %v", path, err)
	}
	if want := testkit.Unhex(t, string(raw)); !bytes.Equal(got, want) {
		t.Errorf("%s mismatch\n got %x\nwant %x", name, got, want)
	}
}

// captureControlKey returns the control key of the captured session.
func captureControlKey(t testing.TB) [KeySize]byte {
	t.Helper()
	k, err := ParseKey(captureKey)
	if err != nil {
		t.Fatal(err)
	}
	return k.Bytes()
}

// captureSealers returns a control-only and a control+data Sealer for the
// captured session.
func captureSealers(t testing.TB) (ctl, full *Sealer) {
	t.Helper()
	ctl, err := NewSealer(captureControlKey(t))
	if err != nil {
		t.Fatal(err)
	}
	full, err = ctl.WithDataKey(key32(t, captureDataKey))
	if err != nil {
		t.Fatal(err)
	}
	return ctl, full
}
