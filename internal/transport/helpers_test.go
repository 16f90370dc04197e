package transport

import (
	"net"
	"strings"
	"sync"
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

// dialAccept connects with dial and accepts the connection on ln: c is
// the dialled end, sc the accepted one. Both close when the test ends.
func dialAccept(t *testing.T, ln net.Listener, dial func() (net.Conn, error)) (c, sc net.Conn) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return c, sc
}

// concurrently runs do(0) to do(n-1) at once and reports the errors they
// return once all have ended.
func concurrently(t *testing.T, n int, do func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = do(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
