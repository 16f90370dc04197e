//go:build unix

package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"kdsrv/internal/peercred"
)

// rootPipeDir holds the pipes of servers run by root. /run/kdsrv itself is
// shared (discovery keeps servers/ there, mode 0755), so the sockets get a
// private subdirectory.
const rootPipeDir = "/run/kdsrv/pipes"

// PipeDir returns the directory of this process's pipe sockets: $KDSRV_PIPE_DIR
// when set; /run/kdsrv/pipes for root; $XDG_RUNTIME_DIR/kdsrv for other
// users; and $TMPDIR/kdsrv-UID where there is no XDG_RUNTIME_DIR (macOS).
func PipeDir() string {
	if d := os.Getenv(PipeDirEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return rootPipeDir
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kdsrv")
	}
	return filepath.Join(os.TempDir(), "kdsrv-"+strconv.Itoa(os.Geteuid()))
}

// pipeDirs are the directories a client looks in, in order: its own
// PipeDir, then root's (a server run by root whose pipe mode lets others
// in).
func pipeDirs() []string {
	d := PipeDir()
	if os.Getenv(PipeDirEnv) != "" || d == rootPipeDir {
		return []string{d}
	}
	return []string{d, rootPipeDir}
}

// pipeFile is the socket file name of a pipe: pipe names are
// case-insensitive, as on Windows, so the file name is lower-case.
func pipeFile(name string) string { return strings.ToLower(name) }

// maxSocketPath is the longest unix socket path the system accepts
// (sun_path less the terminating NUL).
func maxSocketPath() int {
	if runtime.GOOS == "linux" || runtime.GOOS == "android" {
		return 107
	}
	return 103
}

// PipeMode returns the mode of new pipe sockets from $KDSRV_PIPE_MODE
// (octal; default 0600). Only read/write bits are allowed, and the owner
// always keeps read and write.
func PipeMode() (fs.FileMode, error) {
	s := os.Getenv(PipeModeEnv)
	if s == "" {
		return 0o600, nil
	}
	return parsePipeMode(s)
}

func parsePipeMode(s string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || m&^0o666 != 0 || m&0o600 != 0o600 {
		return 0, fmt.Errorf("%s=%q is not a pipe mode: give an octal mode with read and write for the owner and nothing but read/write bits, e.g. 0600 (default), 0660 (group) or 0666", PipeModeEnv, s)
	}
	return fs.FileMode(m), nil
}

// dirModeFor is the least directory mode that lets the users a socket mode
// admits reach the socket: search permission for group and others as
// needed.
func dirModeFor(m fs.FileMode) fs.FileMode {
	d := fs.FileMode(0o700)
	if m&0o060 != 0 {
		d |= 0o010
	}
	if m&0o006 != 0 {
		d |= 0o001
	}
	return d
}

// preparePipeDir creates dir (mode 0700, widened for mode) or checks an
// existing one: a default directory must belong to this user and must not
// be writable by others, since whoever can write there can replace the
// sockets. A directory named by $KDSRV_PIPE_DIR is the operator's choice
// and is used as it is once it exists.
func preparePipeDir(dir string, mode fs.FileMode) error {
	want := dirModeFor(mode)
	if dir == rootPipeDir {
		// The parent is shared with discovery (servers/): world-readable.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("cannot create the pipe directory %s: %w", filepath.Dir(dir), err)
		}
	}
	explicit := os.Getenv(PipeDirEnv) != ""
	err := os.Mkdir(dir, want)
	switch {
	case err == nil:
		return os.Chmod(dir, want) // the umask may have narrowed it
	case !errors.Is(err, fs.ErrExist):
		hint := "create it, or set " + PipeDirEnv + " to a directory you own"
		return fmt.Errorf("cannot create the pipe directory %s: %w; %s", dir, err, hint)
	case explicit:
		return nil
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pipe directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("pipe directory %s exists and is not a directory; remove it or set %s", dir, PipeDirEnv)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("pipe directory %s belongs to another user; set %s to a directory you own", dir, PipeDirEnv)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("pipe directory %s is writable by other users (mode %04o), so others could replace the sockets; run chmod 0700 %s", dir, st.Mode().Perm(), dir)
	}
	if st.Mode().Perm()&want != want {
		if err := os.Chmod(dir, st.Mode().Perm()|want); err != nil {
			return fmt.Errorf("pipe directory %s: %w", dir, err)
		}
	}
	return nil
}

// unixPipeListener removes its socket on Close, if the socket is still the
// one it created.
type unixPipeListener struct {
	*net.UnixListener
	path string
	info fs.FileInfo
	once sync.Once
}

// Accept returns the next client; its RemoteAddr names the peer process
// where the system tells (Linux: "uid 1000 pid 4321").
func (l *unixPipeListener) Accept() (net.Conn, error) {
	c, err := l.UnixListener.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return &pipeConn{UnixConn: c, remote: pipeAddr(pipePeer(c))}, nil
}

// pipeConn is an accepted pipe connection with a readable remote address.
type pipeConn struct {
	*net.UnixConn
	remote net.Addr
}

func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

// pipeAddr describes the process at the other end of a pipe.
type pipeAddr string

func (a pipeAddr) Network() string { return "unix" }
func (a pipeAddr) String() string  { return string(a) }

func (l *unixPipeListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if st, serr := os.Lstat(l.path); serr == nil && os.SameFile(st, l.info) {
			_ = os.Remove(l.path)
		}
	})
	return err
}

func listenPipe(name string) (net.Listener, error) {
	mode, err := PipeMode()
	if err != nil {
		return nil, err
	}
	dir := PipeDir()
	path := filepath.Join(dir, pipeFile(name))
	if len(path) > maxSocketPath() {
		return nil, fmt.Errorf("pipe %s: the socket path %s is longer than the %d bytes a unix socket allows; use a shorter pipe name or set %s to a shorter directory", name, path, maxSocketPath(), PipeDirEnv)
	}
	if err := preparePipeDir(dir, mode); err != nil {
		return nil, fmt.Errorf("pipe %s: %w", name, err)
	}
	if err := clearStaleSocket(name, path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("pipe %s: %w: another kdsrv has just taken %s; choose another name (pipe=kd_%%d makes it unique)", name, ErrPipeInUse, path)
		}
		return nil, fmt.Errorf("pipe %s: cannot listen on %s: %w", name, path, err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it only if it is still ours
	// The directory keeps others out until the mode is set.
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("pipe %s: setting mode %04o on %s: %w", name, mode, path, err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("pipe %s: %w", name, err)
	}
	return &unixPipeListener{UnixListener: ln, path: path, info: st}, nil
}

// clearStaleSocket makes path free for a new socket: nothing there is
// fine; a socket nobody listens on (its server died) is removed; a live
// socket is ErrPipeInUse; anything else is left alone and is an error.
func clearStaleSocket(name, path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pipe %s: %w", name, err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("pipe %s: %s exists and is not a socket; it was left alone: remove it yourself or choose another pipe name", name, path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("pipe %s: %w: another kdsrv is serving %s; choose another name (pipe=kd_%%d makes it unique)", name, ErrPipeInUse, path)
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("pipe %s: cannot remove the stale socket %s: %w", name, path, rerr)
		}
		return nil
	case errors.Is(err, syscall.EAGAIN):
		// The listener's backlog is full: it is alive.
		return fmt.Errorf("pipe %s: %w: another kdsrv is serving %s (busy); choose another name", name, ErrPipeInUse, path)
	}
	return fmt.Errorf("pipe %s: cannot tell whether %s is in use: %w; remove it if no kdsrv serves it, or choose another name", name, path, err)
}

func dialPipe(ctx context.Context, host, name string) (net.Conn, error) {
	if !isLocalHost(host) {
		return nil, remotePipeError(host, name)
	}
	var tried []string
	var d net.Dialer
	for _, dir := range pipeDirs() {
		path := filepath.Join(dir, pipeFile(name))
		tried = append(tried, path)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("cannot reach kdsrv on pipe %s: %s: permission denied; the server's directory admits only its user (see %s in docs/transports.md)", name, path, PipeModeEnv)
		}
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			hint := "check that kdsrv is running with -t npipe:pipe=" + name
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				hint = "the server that made it is gone; start kdsrv -t npipe:pipe=" + name + " again"
			case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
				hint = "the pipe admits only its owner; run kdclient as the same user, or start kdsrv with " + PipeModeEnv + "=0660"
			}
			return nil, fmt.Errorf("cannot reach kdsrv on pipe %s (%s): %w; %s", name, path, err, hint)
		}
		return c, nil
	}
	return nil, fmt.Errorf("cannot reach kdsrv on pipe %s: no such pipe (looked for %s); start kdsrv -t npipe:pipe=%s on this machine, as the same user or with the same %s",
		name, strings.Join(tried, " and "), name, PipeDirEnv)
}

// remotePipeError is the error for a pipe on another machine where this
// operating system cannot reach remote pipes.
func remotePipeError(host, name string) error {
	return fmt.Errorf("npipe:server=%s,pipe=%s: named pipes on other machines can only be reached from Windows, and this is %s; "+
		"run kdsrv on %s with -t tcp:port=N (or ssl) and connect with server=@{tcp:server=%s,port=N}",
		host, name, runtime.GOOS, host, host)
}

// pipePeer names the process at the other end of c from its credentials
// ("uid U pid P" on Linux, "uid U" on macOS and FreeBSD: what kdsrv's
// limits count a pipe client by), or says it is a local pipe client.
func pipePeer(c *net.UnixConn) string {
	if cred := peercred.Of(c); cred != "" {
		return cred
	}
	return "local pipe client"
}
