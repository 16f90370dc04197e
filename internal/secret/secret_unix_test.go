//go:build !windows

package secret

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadFileModes: a file group or others can read or write is refused
// with the mode and the chmod that fixes it. The check reads the mode bits,
// so it refuses as root too (root could read the file whatever its mode).
func TestReadFileModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode    fs.FileMode
		ok      bool
		wantMsg string
	}{
		{0o600, true, ""},
		{0o400, true, ""},
		{0o700, true, ""},
		{0o640, false, "mode 0640: group or others can read it"},
		{0o644, false, "mode 0644: group or others can read it"},
		{0o604, false, "mode 0604: group or others can read it"},
		{0o620, false, "mode 0620: group or others can write it"},
		{0o602, false, "mode 0602: group or others can write it"},
		{0o610, false, "mode 0610"},
	} {
		p := writeFile(t, "pw", pw+"\n", tc.mode)
		got, err := ReadFile("password file", p)
		if tc.ok {
			if err != nil || got != pw {
				t.Errorf("mode %04o: ReadFile = %q, %v; want the password", tc.mode, got, err)
			}
			continue
		}
		var me *ModeError
		if !errors.As(err, &me) {
			t.Errorf("mode %04o: ReadFile = %q, %v; want a ModeError", tc.mode, got, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.wantMsg) || !strings.Contains(msg, "chmod 600 "+p) || !strings.Contains(msg, "password file "+p) {
			t.Errorf("mode %04o: message %q lacks %q, the path or the chmod fix", tc.mode, msg, tc.wantMsg)
		}
		if strings.Contains(msg, pw) {
			t.Errorf("mode %04o: message reveals the secret: %q", tc.mode, msg)
		}
	}
}

// TestReadFileSymlink: a symbolic link is followed, and the mode checked is
// that of the file it points to (the link's own mode is always 0777).
func TestReadFileSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, "good", pw+"\n", 0o600)
	bad := writeFile(t, "bad", pw+"\n", 0o644)
	toGood, toBad, dangling := filepath.Join(dir, "to-good"), filepath.Join(dir, "to-bad"), filepath.Join(dir, "dangling")
	for target, link := range map[string]string{good: toGood, bad: toBad, filepath.Join(dir, "gone"): dangling} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := ReadFile("password file", toGood); err != nil || got != pw {
		t.Errorf("link to a 0600 file: %q, %v", got, err)
	}
	var me *ModeError
	if _, err := ReadFile("password file", toBad); !errors.As(err, &me) || me.Mode.Perm() != 0o644 {
		t.Errorf("link to a 0644 file: %v; want a ModeError for mode 0644", err)
	}
	if _, err := ReadFile("password file", dangling); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling link: %v; want not-exist", err)
	}
}

// TestReadFilePipe: a named pipe (what a shell's <(command) gives) is
// accepted when only its owner may use it.
func TestReadFilePipe(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		_, _ = f.WriteString(pw + "\n")
		f.Close()
	}()
	if got, err := ReadFile("password file", p); err != nil || got != pw {
		t.Fatalf("ReadFile(fifo) = %q, %v", got, err)
	}
}
