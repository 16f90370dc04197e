package secret

import (
	"context"
	"errors"
	"io/fs"
	"kdsrv/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const pw = "s3cret pass"

func writeFile(t *testing.T, name, content string, mode fs.FileMode) string {
	return testkit.WriteFile(t, name, content, mode)
}

func TestReadFileFirstLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content, want string }{
		{"no newline", pw, pw},
		{"LF", pw + "\n", pw},
		{"CRLF", pw + "\r\n", pw},
		{"more lines", pw + "\nsecond line\n", pw},
		{"CRLF more lines", pw + "\r\nsecond\r\n", pw},
		{"spaces kept", "  " + pw + " \n", "  " + pw + " "},
		{"only CR inside", "a\rb\n", "a\rb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "pw", tc.content, 0o600)
			got, err := ReadFile("password file", p)
			if err != nil || got != tc.want {
				t.Fatalf("ReadFile = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadFileRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := writeFile(t, "empty", "", 0o600)
	emptyLine := writeFile(t, "emptyline", "\r\nsecond\n", 0o600)
	long := writeFile(t, "long", strings.Repeat("x", MaxFileSize+10), 0o600)
	for _, tc := range []struct {
		name, path, want string
		is               error
	}{
		{"missing", filepath.Join(dir, "nope"), "password file: open " + filepath.Join(dir, "nope"), fs.ErrNotExist},
		{"empty", empty, "the first line is empty", ErrEmpty},
		{"empty first line", emptyLine, "the first line is empty", ErrEmpty},
		{"directory", dir, "is a directory", nil},
		{"too long", long, "longer than", nil},
		{"no path", "", "no path given", nil},
	} {
		_, err := ReadFile("password file", tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want it to say %q", tc.name, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: err = %v; want errors.Is %v", tc.name, err, tc.is)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{EnvPassword: pw}
	get := func(k string) string { return env[k] }
	if v, ok := FromEnv(get, EnvPassword); !ok || v != pw {
		t.Errorf("FromEnv(KDSRV_PASSWORD) = %q, %v", v, ok)
	}
	if v, ok := FromEnv(get, EnvKDNETKey); ok || v != "" {
		t.Errorf("FromEnv(unset) = %q, %v", v, ok)
	}
}

func TestCommandLineWarning(t *testing.T) {
	t.Parallel()
	w := CommandLineWarning("password", "-password-file FILE")
	for _, want := range []string{"password", "command line", "/proc/PID/cmdline", "-password-file FILE"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
}

func TestPromptWithoutTerminal(t *testing.T) {
	// go test's standard input is not a terminal (it is /dev/null or a
	// pipe), so Prompt must say so rather than block.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	var out strings.Builder
	if _, err := Prompt(context.Background(), &out, "Password: "); !errors.Is(err, ErrNoTerminal) {
		t.Fatalf("Prompt without a terminal: %v; want ErrNoTerminal", err)
	}
	if out.Len() != 0 {
		t.Errorf("Prompt wrote %q although it could not ask", out.String())
	}
}
