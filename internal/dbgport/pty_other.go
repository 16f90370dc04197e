//go:build !unix

package dbgport

import (
	"net"
	"time"

	"kdsrv/internal/serial"
)

// PTY is a debugger port on a pseudo-terminal; this system has none.
type PTY struct{}

// ListenPTY returns serial.ErrNoPTY: this system has no pseudo-terminals.
func ListenPTY(poll time.Duration) (*PTY, error) { return nil, serial.ErrNoPTY }

// Path is empty.
func (l *PTY) Path() string { return "" }

// Addr is nil.
func (l *PTY) Addr() net.Addr { return nil }

// Close does nothing.
func (l *PTY) Close() error { return nil }

// Accept fails.
func (l *PTY) Accept() (net.Conn, error) { return nil, serial.ErrNoPTY }
