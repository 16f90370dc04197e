package commux

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	var r Registry
	r.Config = testConfig("")
	opens := 0
	var peers []net.Conn
	open := func() (io.ReadWriteCloser, error) {
		opens++
		a, b := net.Pipe()
		peers = append(peers, b)
		return a, nil
	}
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	// The peer end must be drained or the mux's first write blocks forever
	// on net.Pipe; a goroutine reads until the pipe closes.
	drained := make(chan struct{})
	defer func() { <-drained }()
	m1, rel1, err := r.Get("/dev/ttyS0", 115200, open)
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer close(drained); io.Copy(io.Discard, peers[0]) }()
	m2, rel2, err := r.Get("/dev/ttyS0", 115200, open)
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 || opens != 1 {
		t.Fatalf("same port gave different muxes (opens=%d)", opens)
	}
	if m1.Name() != "/dev/ttyS0" {
		t.Fatalf("mux name %q", m1.Name())
	}
	if _, _, err := r.Get("/dev/ttyS0", 9600, open); err == nil || !strings.Contains(err.Error(), "115200") {
		t.Fatalf("conflicting baud: %v", err)
	}
	wantErr := errors.New("device gone")
	if _, _, err := r.Get("/dev/ttyS1", 9600, func() (io.ReadWriteCloser, error) { return nil, wantErr }); !errors.Is(err, wantErr) {
		t.Fatalf("open error not returned: %v", err)
	}
	// Different channels on the shared mux.
	l1, err := m1.Listen(1)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if _, err := m2.Listen(2); err != nil {
		t.Fatal(err)
	}
	rel1()
	rel1() // idempotent
	select {
	case <-m1.Done():
		t.Fatal("mux closed while still referenced")
	case <-time.After(20 * time.Millisecond):
	}
	rel2()
	select {
	case <-m1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("last release did not close the mux")
	}
	// A new Get opens the port again.
	m3, rel3, err := r.Get("/dev/ttyS0", 9600, open)
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, peers[1])
	if m3 == m1 || opens != 2 {
		t.Fatal("closed mux was reused")
	}
	rel3()
}
