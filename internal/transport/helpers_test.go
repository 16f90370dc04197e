package transport

import (
	"strings"
	"testing"

	"kdsrv/internal/spec"
)

// serverT and clientT parse a transport of the kdsrv and of the client
// side; a spelling the grammar refuses fails the test.
func serverT(t *testing.T, s string) *spec.Transport {
	t.Helper()
	return mustTransport(t, s, spec.ParseServerTransport)
}

func clientT(t *testing.T, s string) *spec.Transport {
	t.Helper()
	return mustTransport(t, s, spec.ParseClientTransport)
}

func mustTransport(t *testing.T, s string, parse func(string) (*spec.Transport, error)) *spec.Transport {
	t.Helper()
	tr, err := parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return tr
}

// errSays checks that err happened and that its message says each of want.
func errSays(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one that says %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}
