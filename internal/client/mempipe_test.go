package client

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestMemPipe(t *testing.T) {
	a, z := memPipe()
	// Writes do not wait for the reader, and bytes arrive in order.
	for _, s := range []string{"abc", "", "defg"} {
		if n, err := a.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	got := make([]byte, 2)
	var all []byte
	for len(all) < 7 {
		n, err := z.Read(got)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		all = append(all, got[:n]...)
	}
	if string(all) != "abcdefg" {
		t.Fatalf("read %q, want abcdefg", all)
	}
	// The other direction is independent.
	if _, err := z.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if n, _ := a.Read(b); string(b[:n]) != "back" {
		t.Fatalf("read %q, want back", b[:n])
	}
	// A reader waiting on an empty pipe wakes when the peer closes it; what
	// was written before the close is still read.
	if _, err := z.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		buf, err := io.ReadAll(a)
		if err == nil && !bytes.Equal(buf, []byte("last")) {
			err = errors.New("read " + string(buf) + ", want last")
		}
		done <- err
	}()
	z.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after the peer closed: %v, want io.ErrClosedPipe", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// A writer waits once memPipeLimit bytes are unread, and goes on when the
// reader takes some (or the pipe closes).
func TestMemPipeBounded(t *testing.T) {
	a, z := memPipe()
	big := make([]byte, memPipeLimit)
	if _, err := a.Write(big); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := a.Write([]byte("more"))
		wrote <- err
	}()
	buf := make([]byte, 4096)
	if _, err := z.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write after the reader made room: %v", err)
	}
	if _, err := a.Write(big); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := a.Write([]byte("blocked"))
		wrote <- err
	}()
	z.Close()
	if err := <-wrote; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("blocked Write after Close: %v, want io.ErrClosedPipe", err)
	}
}
