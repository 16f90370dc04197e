package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"kdsrv/internal/spec"
)

// The npipe transport: a real named pipe (\\.\pipe\Name) on Windows, and a
// unix socket named after the pipe in a private runtime directory on Linux
// and macOS (see PipeDir). The operating-system parts live in
// npipe_windows.go, npipe_unix.go and npipe_other.go behind ListenPipe and
// DialPipe, which spipe (TLS over npipe) uses as well.

// Environment variables read by both kdsrv and kdclient.
const (
	// PipeDirEnv overrides the directory of the pipe sockets (Linux,
	// macOS). Both sides must see the same value.
	PipeDirEnv = "KDSRV_PIPE_DIR"
	// PipeModeEnv widens the mode of the pipe sockets, in octal (Linux,
	// macOS): 0600 (default), 0660 (group) or 0666 (everyone).
	PipeModeEnv = "KDSRV_PIPE_MODE"
	// PipeSDDLEnv replaces the security descriptor of the pipes on Windows
	// (SDDL); the default lets the creating user, SYSTEM and the
	// administrators connect.
	PipeSDDLEnv = "KDSRV_PIPE_SDDL"
)

// ErrPipeInUse is returned (wrapped) when another live server holds the
// pipe name.
var ErrPipeInUse = errors.New("pipe name in use")

// pipeListener is the server side of npipe.
type pipeListener struct {
	net.Listener
	display string
}

func (l *pipeListener) Display() string { return l.display }

// listenNPipe serves npipe:pipe=Name, with %d/%x expanded to the process
// and thread id.
func listenNPipe(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	name := spec.ExpandPipeName(t.Pipe, o.PID, o.TID)
	ln, err := ListenPipe(name)
	if err != nil {
		return nil, fmt.Errorf("npipe transport: %w", err)
	}
	return &pipeListener{Listener: ln, display: "npipe:pipe=" + name}, nil
}

// dialNPipe connects to npipe:server=Host,pipe=Name.
func dialNPipe(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	return DialPipe(ctx, t.Server, t.Pipe)
}

// ListenPipe opens the pipe name (already expanded) for clients: on
// Windows the named pipe \\.\pipe\name, elsewhere a unix socket in
// PipeDir(). A name that another live server holds fails with an error
// wrapping ErrPipeInUse; a socket left behind by a server that died is
// replaced. Closing the listener removes the socket.
func ListenPipe(name string) (net.Listener, error) {
	if err := checkPipeFileName(name); err != nil {
		return nil, err
	}
	return listenPipe(name)
}

// DialPipe connects to the pipe name on host ("." or "" for this
// machine). Remote hosts work only where the operating system has remote
// named pipes (Windows); elsewhere the error points to tcp and ssl.
func DialPipe(ctx context.Context, host, name string) (net.Conn, error) {
	if err := checkPipeFileName(name); err != nil {
		return nil, err
	}
	return dialPipe(ctx, host, name)
}

// checkPipeFileName refuses names that cannot be a file name in the pipe
// directory. The grammar (spec) already refuses separators and "..".
func checkPipeFileName(name string) error {
	if name == "" || name == "." || strings.ContainsAny(name, "/\\\x00") || strings.Contains(name, "..") {
		return fmt.Errorf("pipe name %q is not usable: give a plain name such as pipe=KernelPipe", name)
	}
	return nil
}

// isLocalHost reports whether host names this machine for a pipe: ".",
// "localhost", a loopback address or this machine's host name (full or its
// first label), case-insensitively.
func isLocalHost(host string) bool {
	h := strings.ToLower(strings.Trim(strings.TrimPrefix(host, `\\`), "[]"))
	switch h {
	case "", ".", "localhost", "127.0.0.1", "::1":
		return true
	}
	self, err := os.Hostname()
	if err != nil || self == "" {
		return false
	}
	self = strings.ToLower(self)
	short, _, _ := strings.Cut(self, ".")
	hshort, _, _ := strings.Cut(h, ".")
	return h == self || h == short || (hshort == short && !strings.Contains(h, ":") && net.ParseIP(h) == nil)
}
