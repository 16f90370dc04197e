package client

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

func TestDumpFileCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mem.bin")
	d, err := CreateDumpFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("destination exists before Commit: %v", err)
	}
	d.Write([]byte("hello "))
	d.Write([]byte("kernel"))
	if d.Written() != 12 {
		t.Fatalf("Written = %d", d.Written())
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "hello kernel" {
		t.Fatalf("after Commit: %q, %v", got, err)
	}
	if names := testkit.DirNames(t, dir); len(names) != 1 {
		t.Fatalf("left behind: %v", names)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("new dump has mode %v; want 0600", fi.Mode().Perm())
	}
	if _, err := d.Abort(true); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if names := testkit.DirNames(t, dir); len(names) != 1 {
		t.Fatalf("Abort after Commit left: %v", names)
	}
}

func TestDumpFileCommitReplacesKeepingMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mem.bin")
	if err := os.WriteFile(path, []byte("old contents, longer than the new"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	d, err := CreateDumpFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d.Write([]byte("new"))
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "new" {
		t.Fatalf("after Commit: %q", got)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640 {
		t.Errorf("replaced dump has mode %v; want the old 0640", fi.Mode().Perm())
	}
}

// TestDumpFileAbortLeavesExistingUntouched: an aborted dump leaves the
// existing file byte for byte, and keeps the partial data only on request.
func TestDumpFileAbortLeavesExistingUntouched(t *testing.T) {
	t.Parallel()
	old := bytes.Repeat([]byte("previous dump "), 1000)
	for _, keep := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "mem.bin")
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := CreateDumpFile(path)
		if err != nil {
			t.Fatal(err)
		}
		d.Write([]byte("partial"))
		partial, err := d.Abort(keep)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("keep=%v: existing file changed (%d bytes, %v)", keep, len(got), err)
		}
		names := testkit.DirNames(t, dir)
		if !keep {
			if partial != "" || len(names) != 1 {
				t.Fatalf("keep=false: partial %q, directory %v", partial, names)
			}
			continue
		}
		if partial != path+PartialSuffix || len(names) != 2 {
			t.Fatalf("keep=true: partial %q, directory %v", partial, names)
		}
		if p, _ := os.ReadFile(partial); string(p) != "partial" {
			t.Fatalf("partial file holds %q", p)
		}
	}
}

func TestDumpFileRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{"", "no output file"},
		{dir, "not a regular file"},
		{filepath.Join(dir, "missing", "mem.bin"), "cannot write into the directory of"},
	} {
		if _, err := CreateDumpFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateDumpFile(%q) = %v; want %q", tc.path, err, tc.want)
		}
	}
	if names := testkit.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("refusals left files: %v", names)
	}
}
