package logx

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestPeerUnixSocket: a client of a unix socket is named by its
// credentials (Linux) and the socket's path, never as "@".
func TestPeerUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "logx")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "kd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("no unix sockets: %v", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	got := Peer(sc)
	if strings.Contains(got, "@") || !strings.Contains(got, path) {
		t.Errorf("Peer = %q, want the socket path and no @", got)
	}
	if runtime.GOOS == "linux" && !strings.Contains(got, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("Peer = %q, want this process's pid", got)
	}
}

func TestPeerTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if got := Peer(sc); got != cc.LocalAddr().String() {
		t.Errorf("Peer = %q, want %q", got, cc.LocalAddr())
	}
}
