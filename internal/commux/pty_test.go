//go:build linux || darwin

package commux

import (
	"os"
	"testing"
	"time"

	"kdsrv/internal/serial"
	"kdsrv/internal/testkit"
)

// ptyLine returns both ends of a pseudo-terminal as byte streams: the master
// (made pollable) and the slave opened through the serial package in raw
// mode, as kdsrv opens a real port.
func ptyLine(t *testing.T) (*os.File, *serial.Port) {
	t.Helper()
	m, slave := testkit.PTY(t)
	p, err := serial.Open(slave, 115200)
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", slave, err)
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
