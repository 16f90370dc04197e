package testkit

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// UnixPair is a connected pair of unix stream sockets: the dialling end
// and the accepted end. Both are closed when the test ends.
func UnixPair(t testing.TB) (dialled, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(ShortDir(t), "pair.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept() // ends at the latest when ln closes
		ch <- c
	}()
	a, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		a.Close()
		t.Fatal("unix socket pair: accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// StaleSocket leaves a unix socket file at path that no process serves,
// as a program that died leaves one behind.
func StaleSocket(t testing.TB, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale socket at %s: %v", path, err)
	}
}
