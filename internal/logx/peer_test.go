package logx

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

// TestPeerUnixSocket: a client of a unix socket is named by its
// credentials (Linux) and the socket's path, never as "@".
func TestPeerUnixSocket(t *testing.T) {
	_, sc := testkit.UnixPair(t)
	path := sc.LocalAddr().String()
	if !strings.HasSuffix(path, ".sock") {
		t.Fatalf("accepted end's local address %q is not the socket's path", path)
	}
	got := Peer(sc)
	if strings.Contains(got, "@") || !strings.Contains(got, path) {
		t.Errorf("Peer = %q, want the socket path and no @", got)
	}
	if runtime.GOOS == "linux" && !strings.Contains(got, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("Peer = %q, want this process's pid", got)
	}
}

func TestPeerTCP(t *testing.T) {
	cc, sc := testkit.TCPPair(t)
	if got := Peer(sc); got != cc.LocalAddr().String() {
		t.Errorf("Peer = %q, want %q", got, cc.LocalAddr())
	}
}
