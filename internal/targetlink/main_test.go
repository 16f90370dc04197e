package targetlink

import (
	"testing"

	"go.uber.org/goleak"

	"kdsrv/internal/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// target parses a trans= value or fails the test.
func target(t *testing.T, s string) *spec.Target {
	t.Helper()
	tg, err := spec.ParseTarget(s)
	if err != nil {
		t.Fatalf("ParseTarget(%q): %v", s, err)
	}
	return tg
}
