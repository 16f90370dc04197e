//go:build linux || darwin

package commux

import (
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
)

// ptyLine returns both ends of a pseudo-terminal as byte streams: the master
// (made pollable) and the slave opened through the serial package in raw
// mode, as kdsrv opens a real port.
func ptyLine(t *testing.T) (*os.File, *serial.Port) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer slave.Close() // the serial package opens its own descriptor
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	rc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) })
	master.Close()
	if derr != nil {
		t.Fatal(derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "ptmx")
	p, err := serial.Open(slave.Name(), 115200)
	if err != nil {
		m.Close()
		t.Fatalf("serial.Open(%s): %v", slave.Name(), err)
	}
	return m, p
}

func TestStreamsOverPTY(t *testing.T) {
	master, port := ptyLine(t)
	cfg := testConfig("")
	cfg.RetransmitTimeout = 100 * time.Millisecond
	ca, cb := cfg, cfg
	ca.Name = "pty-master"
	client, server := pair(t, master, port, ca, cb)
	if server.Name() != port.Name() {
		t.Fatalf("mux did not take the port's name: %q", server.Name())
	}
	runStreams(t, client, server, []int{3, 4, 5}, 1<<20)
	t.Logf("client %+v", client.Stats())
	t.Logf("server %+v", server.Stats())
}
