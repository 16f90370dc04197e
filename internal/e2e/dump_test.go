package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"kdsrv/internal/sim"
)

// dumpLen is long enough that a dump is still running when the test
// interrupts it (the target's data region is as large).
const dumpLen = 256 << 20

var dumpProgress = regexp.MustCompile(`dump (interrupted|failed) after (\d+) of (\d+) bytes`)

// oldDump writes a file standing for an earlier dump and returns its path
// and contents.
func oldDump(t *testing.T) (string, []byte) {
	t.Helper()
	old := make([]byte, 64<<10)
	rand.Read(old)
	path := filepath.Join(t.TempDir(), "mem.bin")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, old
}

// checkUntouched checks that path still holds old, byte for byte.
func checkUntouched(t *testing.T, path string, old []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("%s changed: %d bytes (was %d), %v", path, len(got), len(old), err)
	}
}

// TestDumpInterrupted: a dump interrupted by SIGINT (exit 130) or SIGTERM
// (exit 143) says how far it got and leaves an existing output file byte
// for byte as it was; what it read is kept only with -keep-partial, as
// FILE.partial, and is exactly the target's memory.
func TestDumpInterrupted(t *testing.T) {
	st := startStack(t, []string{"-data-size", strconv.Itoa(dumpLen)}, nil)
	for _, tc := range []struct {
		sig      syscall.Signal
		code     int
		keep     bool
		wantFile bool
	}{
		{syscall.SIGINT, 130, false, false},
		{syscall.SIGTERM, 143, true, true},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			path, old := oldDump(t)
			args := []string{"-k", st.k}
			if tc.keep {
				args = append(args, "-keep-partial")
			}
			args = append(args, "dump", fmt.Sprintf("%#x", sim.DataBase), strconv.Itoa(dumpLen), path)
			c := st.client(t, nil, args...)
			waitForFile(t, c, filepath.Join(filepath.Dir(path), ".mem.bin.*.tmp"), 256<<10)
			c.Signal(tc.sig)
			if code := c.Wait(t); code != tc.code {
				t.Fatalf("exit code %d after %v; want %d\n%s", code, tc.sig, tc.code, c.Stderr)
			}
			msg := c.Stderr.String()
			m := dumpProgress.FindStringSubmatch(msg)
			if m == nil || m[1] != "interrupted" || m[3] != strconv.Itoa(dumpLen) || !strings.Contains(msg, path+" left unchanged") {
				t.Fatalf("message does not say the dump was interrupted, how far, and that the file is unchanged:\n%s", msg)
			}
			checkUntouched(t, path, old)
			names := dirNames(t, filepath.Dir(path))
			if !tc.keep {
				if names != "mem.bin" {
					t.Fatalf("directory holds %q; want only mem.bin", names)
				}
				return
			}
			if names != "mem.bin mem.bin.partial" {
				t.Fatalf("directory holds %q; want mem.bin and mem.bin.partial", names)
			}
			partial, err := os.ReadFile(path + ".partial")
			if err != nil {
				t.Fatal(err)
			}
			if strconv.Itoa(len(partial)) != m[2] || len(partial) < 256<<10 {
				t.Fatalf("partial file holds %d bytes; the message says %s", len(partial), m[2])
			}
			if !bytes.Equal(partial, patternBytes(sim.DataBase, len(partial))) {
				t.Fatal("partial file differs from the target's memory")
			}
		})
	}
}

// TestDumpServerKilled: kdsrv killed (SIGKILL) in the middle of a dump:
// kdclient exits 1 saying the dump failed and how far it got, and the
// existing file is untouched.
func TestDumpServerKilled(t *testing.T) {
	st := startStack(t, []string{"-data-size", strconv.Itoa(dumpLen)}, nil)
	path, old := oldDump(t)
	c := st.client(t, nil, "-k", st.k, "dump", fmt.Sprintf("%#x", sim.DataBase), strconv.Itoa(dumpLen), path)
	waitForFile(t, c, filepath.Join(filepath.Dir(path), ".mem.bin.*.tmp"), 256<<10)
	st.server.Signal(syscall.SIGKILL)
	if code := c.Wait(t); code != 1 {
		t.Fatalf("exit code %d; want 1\n%s", code, c.Stderr)
	}
	msg := c.Stderr.String()
	if m := dumpProgress.FindStringSubmatch(msg); m == nil || m[1] != "failed" || !strings.Contains(msg, "left unchanged") {
		t.Fatalf("message does not say the dump failed, how far, and that the file is unchanged:\n%s", msg)
	}
	checkUntouched(t, path, old)
	if names := dirNames(t, filepath.Dir(path)); names != "mem.bin" {
		t.Fatalf("directory holds %q; want only mem.bin", names)
	}
}

// TestDumpComplete: a complete dump replaces the file with exactly the
// target's memory and leaves nothing else behind.
func TestDumpComplete(t *testing.T) {
	st := startStack(t, nil, nil)
	path, _ := oldDump(t)
	const n = 300 << 10
	c := st.client(t, nil, "-k", st.k, "dump", fmt.Sprintf("%#x", sim.DataBase+0x1000), strconv.Itoa(n), path)
	if code := c.Wait(t); code != 0 {
		t.Fatalf("exit code %d\n%s", code, c.Stderr)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, patternBytes(sim.DataBase+0x1000, n)) {
		t.Fatalf("dump holds %d bytes (%v), not the target's memory", len(got), err)
	}
	if names := dirNames(t, filepath.Dir(path)); names != "mem.bin" {
		t.Fatalf("directory holds %q; want only mem.bin", names)
	}
}
