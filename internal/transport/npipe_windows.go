//go:build windows

package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// defaultPipeSDDL admits the user running kdsrv, SYSTEM and the
// administrators, like a unix socket of mode 0600 in a private directory.
func defaultPipeSDDL() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("reading this process's user for the pipe's access list: %w", err)
	}
	return "D:P(A;;GA;;;" + u.User.Sid.String() + ")(A;;GA;;;SY)(A;;GA;;;BA)", nil
}

// PipeDir is where pipes live: on Windows the named-pipe namespace.
func PipeDir() string { return `\\.\pipe` }

func listenPipe(name string) (net.Listener, error) {
	path := `\\.\pipe\` + name
	sddl := os.Getenv(PipeSDDLEnv)
	if sddl == "" {
		var err error
		if sddl, err = defaultPipeSDDL(); err != nil {
			return nil, fmt.Errorf("pipe %s: %w", name, err)
		}
	}
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: sddl})
	if err != nil {
		switch {
		case errors.Is(err, windows.ERROR_ACCESS_DENIED), errors.Is(err, windows.ERROR_ALREADY_EXISTS),
			errors.Is(err, windows.ERROR_PIPE_BUSY), errors.Is(err, windows.ERROR_FILE_EXISTS):
			return nil, fmt.Errorf("pipe %s: %w: another server holds %s (%v); choose another name (pipe=kd_%%d makes it unique)", name, ErrPipeInUse, path, err)
		}
		if os.Getenv(PipeSDDLEnv) != "" {
			return nil, fmt.Errorf("pipe %s: cannot create %s: %w; check the security descriptor in %s", name, path, err, PipeSDDLEnv)
		}
		return nil, fmt.Errorf("pipe %s: cannot create %s: %w", name, path, err)
	}
	return ln, nil
}

func dialPipe(ctx context.Context, host, name string) (net.Conn, error) {
	h := "."
	if !isLocalHost(host) {
		h = host
	}
	path := `\\` + h + `\pipe\` + name
	c, err := winio.DialPipeContext(ctx, path)
	if err != nil {
		hint := "check that kdsrv is running there with -t npipe:pipe=" + name
		switch {
		case errors.Is(err, windows.ERROR_FILE_NOT_FOUND):
			hint = "no such pipe: start kdsrv -t npipe:pipe=" + name + " on " + h + " (or check the name)"
		case errors.Is(err, windows.ERROR_ACCESS_DENIED):
			hint = "the pipe does not admit this user; run as the server's user or start kdsrv with " + PipeSDDLEnv + " set"
		case errors.Is(err, windows.ERROR_BAD_NETPATH):
			hint = "the host cannot be reached over SMB (ports 139/445); check its name and firewall (IcfEnable), or use tcp/ssl"
		}
		return nil, fmt.Errorf("cannot reach kdsrv on pipe %s: %w; %s", path, err, hint)
	}
	return c, nil
}
