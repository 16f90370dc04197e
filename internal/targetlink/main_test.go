package targetlink

import (
	"context"
	"testing"
	"time"

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

// wait bounds every blocking step of these tests.
const wait = 5 * time.Second

// openCtx bounds an Open by wait.
func openCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// mustOpenStream opens the stream of trans (a trans= value) under allow;
// the stream closes when the test ends.
func mustOpenStream(t *testing.T, trans string, allow *AllowList) Stream {
	t.Helper()
	l, err := OpenStream(openCtx(t), target(t, trans), allow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
