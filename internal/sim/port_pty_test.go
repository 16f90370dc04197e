//go:build unix

package sim

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/testkit"
)

// Debuggers come and go on the pty; the machine keeps running and is
// reachable again on the same slave device each time.
func TestServePTY(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tgt := New(Config{PrintEvery: 50 * time.Millisecond})
	var log logLines
	path, _ := startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return ServePTY(ctx, tgt, o)
	}, PortOptions{Logger: log.logger(), PollInterval: 10 * time.Millisecond})
	if !strings.HasPrefix(path, "/dev/") {
		t.Fatalf("Ready(%q); want a device path", path)
	}
	for round := 1; round <= 3; round++ {
		f := testkit.OpenPTYSlave(t, path)
		h := fastHost(t, f)
		attachAndRead(t, tgt, h)
		if err := h.Continue(ctxT(t)); err != nil {
			t.Fatalf("round %d: continue: %v", round, err)
		}
		// Close the slave, as a debugger that quits does; the target
		// keeps running and is reachable again on the same path.
		h.Link().Close()
		f.Close()
		testkit.WaitFor(t, fmt.Sprintf("disconnect %d", round), func() bool { return log.count("disconnected") >= round })
	}
	if n := tgt.Stats().Connections; n != 3 {
		t.Errorf("Connections = %d; want 3", n)
	}
}
