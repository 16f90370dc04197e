package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kdsrv/internal/spec"
)

func TestIsLocalHost(t *testing.T) {
	self, _ := os.Hostname()
	short, _, _ := strings.Cut(self, ".")
	tests := []struct {
		host string
		want bool
	}{
		{".", true},
		{"", true},
		{`\\.`, true},
		{"localhost", true},
		{"LOCALHOST", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[::1]", true},
		{self, true},
		{strings.ToUpper(short), true},
		{"192.0.2.7", false},
		{"debughost.invalid", false},
		{"2001:db8::1", false},
	}
	for _, tc := range tests {
		if got := isLocalHost(tc.host); got != tc.want {
			t.Errorf("isLocalHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestCheckPipeFileName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "a\x00b", "x..y"} {
		if checkPipeFileName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"kd", "Kernel_Pipe-1", "kd_1234_1f", ".hidden", "a.b"} {
		if err := checkPipeFileName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// FuzzPipeName: whatever name a server transport accepts, the pipe's file
// stays directly inside the pipe directory.
func FuzzPipeName(f *testing.F) {
	for _, s := range []string{"kd", "kd_%d_%x", "KernelPipe", ".", "..", "a.b", "%x%x%x", "名前"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tr, err := spec.ParseServerTransport("npipe:pipe=" + name)
		if err != nil {
			return
		}
		expanded := spec.ExpandPipeName(tr.Pipe, 4242, 0x1f)
		if checkPipeFileName(expanded) != nil {
			return
		}
		dir := filepath.FromSlash("/run/kdsrv/pipes")
		p := filepath.Join(dir, strings.ToLower(expanded))
		if filepath.Dir(p) != dir || filepath.Base(p) == "." || filepath.Base(p) == ".." {
			t.Fatalf("pipe %q maps to %q, outside %s", name, p, dir)
		}
	})
}
