// Package secret keeps passwords and keys off command lines. A value given
// on a command line is readable by every local user for as long as the
// process runs (ps, /proc/PID/cmdline); this package reads it instead from
// a file only its owner can read, from an environment variable (readable
// only by the same user and root, in /proc/PID/environ), or from the
// terminal without echo.
package secret

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Environment variables a secret may come from.
const (
	// EnvPassword holds the password of a kdsrv transport (kdclient).
	EnvPassword = "KDSRV_PASSWORD"
	// EnvKDNETKey holds the KDNET key (a.b.c.d) of a trans=@{net:...}
	// target that gives none (kdclient).
	EnvKDNETKey = "KDSRV_KDNET_KEY"
)

// MaxFileSize bounds how much of a secret file is read: a secret is one
// short line, and a path given by mistake (a log, a device) must not make
// the program read without end.
const MaxFileSize = 64 << 10

// ModeError reports a secret file that others than its owner may access.
type ModeError struct {
	What string // "password file", "KDNET key file"
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	who := "group or others can read it"
	if e.Mode.Perm()&0o044 == 0 {
		who = "group or others can write it"
	}
	return fmt.Sprintf("%s %s has mode %04o: %s; restrict it with: chmod 600 %s", e.What, e.Path, uint32(e.Mode.Perm()), who, e.Path)
}

// ErrEmpty is returned (wrapped) for a secret file whose first line is empty.
var ErrEmpty = errors.New("the first line is empty")

// ReadFile returns the first line of the file at path, without its line
// ending (LF or CRLF); what follows the first line is ignored. what names
// the file in errors ("password file"). The file must be a regular file or
// a pipe (as from a shell's <(command)); on systems with Unix permissions
// it must not be accessible to group or others — the check is on the mode
// bits of the opened file, so it holds for root too, who could read the
// file anyway. A symbolic link is followed; the mode checked is the
// target's. Errors name the path but never the content.
func ReadFile(what, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s: no path given", what)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case fi.IsDir():
		return "", fmt.Errorf("%s %s is a directory; give the file that holds the secret", what, path)
	case !fi.Mode().IsRegular() && fi.Mode()&fs.ModeNamedPipe == 0:
		return "", fmt.Errorf("%s %s is not a regular file (mode %v)", what, path, fi.Mode())
	}
	if err := checkMode(what, path, fi); err != nil {
		return "", err
	}
	line, err := firstLine(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	return line, nil
}

func firstLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 4096)
	var buf bytes.Buffer
	for {
		chunk, err := br.ReadSlice('\n')
		buf.Write(chunk)
		if buf.Len() > MaxFileSize {
			return "", fmt.Errorf("the first line is longer than %d bytes; is this the right file?", MaxFileSize)
		}
		if err == nil || err == io.EOF {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return "", err
	}
	line := strings.TrimSuffix(buf.String(), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", ErrEmpty
	}
	return line, nil
}

// FromEnv returns the value of the environment variable name from getenv
// (os.Getenv when nil), and whether it was set to something.
func FromEnv(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	return v, v != ""
}

// CommandLineWarning is the warning both programs print, once, when a
// password is given on the command line. alternatives says what to use
// instead (e.g. "-password-file FILE (mode 600) or the KDSRV_PASSWORD
// environment variable").
func CommandLineWarning(what, alternatives string) string {
	return fmt.Sprintf("warning: the %s given on the command line is visible to every local user (ps, /proc/PID/cmdline) while this program runs; use %s instead", what, alternatives)
}
