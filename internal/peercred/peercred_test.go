package peercred

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestOf: the accepted end of a unix socket names this process (its uid,
// and on Linux its pid).
func TestOf(t *testing.T) {
	dir, err := os.MkdirTemp("", "kdpc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	want := ""
	switch runtime.GOOS {
	case "linux":
		want = fmt.Sprintf("uid %d pid %d", os.Geteuid(), os.Getpid())
	case "darwin", "freebsd":
		want = fmt.Sprintf("uid %d", os.Geteuid())
	}
	if got := Of(sc); got != want {
		t.Fatalf("Of = %q, want %q", got, want)
	}
}
