package testkit

import (
	"errors"
	"os"
	"testing"

	"kdsrv/internal/serial"
)

// PTY allocates a pseudo-terminal pair (serial.OpenPTY) for the test: the
// non-blocking master and the path of the raw slave a debugger would open.
// The master is closed when the test ends; the test is skipped where the
// system has no pseudo-terminals.
func PTY(t testing.TB) (master *os.File, slavePath string) {
	t.Helper()
	m, path, err := serial.OpenPTY()
	if errors.Is(err, serial.ErrNoPTY) {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, path
}
