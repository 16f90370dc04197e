package peercred

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"kdsrv/internal/testkit"
)

// TestOf: the accepted end of a unix socket names this process (its uid,
// and on Linux its pid).
func TestOf(t *testing.T) {
	_, sc := testkit.UnixPair(t)
	want := ""
	switch runtime.GOOS {
	case "linux":
		want = fmt.Sprintf("uid %d pid %d", os.Geteuid(), os.Getpid())
	case "darwin", "freebsd":
		want = fmt.Sprintf("uid %d", os.Geteuid())
	}
	if got := Of(sc.(*net.UnixConn)); got != want {
		t.Fatalf("Of = %q, want %q", got, want)
	}
}
