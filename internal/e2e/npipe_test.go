package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
)

// TestEndToEndNPipe: the suite over a pipe named with %d_%x, with a
// password (wrong, missing, right), then a second session re-attaches to
// the same target; a second server cannot take the pipe name.
func TestEndToEndNPipe(t *testing.T) {
	pipeDir := shortDir(t)
	t.Setenv(transport.PipeDirEnv, pipeDir)
	t.Setenv(transport.PipeModeEnv, "")
	h := newHarness(t, harnessOpts{
		transports: []string{"npipe:pipe=kde2e_%d_%x,password=s3cret"},
		mutate:     func(c *server.Config) { c.Listen.PID, c.Listen.TID = 4242, 0x1f },
	})
	if d := h.srv.Displays()[0]; d != "npipe:pipe=kde2e_4242_1f" {
		t.Fatalf("display %q", d)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Lstat(filepath.Join(pipeDir, "kde2e_4242_1f"))
		if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("pipe socket: %v %v", st, err)
		}
	}
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	t.Run("wrong password", func(t *testing.T) {
		_, err := h.open(h.clientSpec(0, "password=wrong1"), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing password", func(t *testing.T) {
		_, err := h.open(h.clientSpec(0, ""), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "requires a password") {
			t.Fatalf("got %v", err)
		}
	})
	var s *session
	t.Run("suite", func(t *testing.T) {
		var err error
		s, err = h.open(h.clientSpec(0, "password=s3cret"), trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		suite(t, s, tgt)
	})
	if t.Failed() {
		return
	}
	t.Run("re-attach", func(t *testing.T) {
		s.close()
		s.Conn.Close()
		s2, err := h.open(`npipe:server=\\localhost,pipe=KDE2E_4242_1F,password=s3cret`, trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		reattached(t, s2)
	})
	t.Run("name in use", func(t *testing.T) {
		tr, err := spec.ParseServerTransport("npipe:pipe=kde2e_%d_%x")
		if err != nil {
			t.Fatal(err)
		}
		s2, err := server.New(server.Config{Transports: []*spec.Transport{tr}, Listen: transport.Options{PID: 4242, TID: 0x1f}})
		if err != nil {
			t.Fatal(err)
		}
		err = s2.Listen(context.Background())
		if !errors.Is(err, transport.ErrPipeInUse) || !strings.Contains(err.Error(), "pipe name in use") {
			t.Fatalf("second server on the same pipe: %v", err)
		}
	})
}
