package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

type entry struct {
	name         string
	mode         uint32
	rmaj, rmin   uint32
	data         []byte
	nlink, inode uint32
}

// readNewc is an independent reader of newc archives for the tests.
func readNewc(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		e := entry{inode: field(0), mode: field(1), nlink: field(4), rmaj: field(9), rmin: field(10)}
		size, namesize := int(field(6)), int(field(11))
		nameEnd := off + 110 + namesize
		e.name = string(b[off+110 : nameEnd-1])
		if b[nameEnd-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", e.name)
		}
		dataOff := align(nameEnd)
		e.data = b[dataOff : dataOff+size]
		off = align(dataOff + size)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestKdtargetImage(t *testing.T) {
	initProg := []byte("\x7fELF pretend program, 37 bytes long")
	for _, compress := range []bool{false, true} {
		var buf bytes.Buffer
		if err := Kdtarget(&buf, initProg, compress); err != nil {
			t.Fatal(err)
		}
		raw := buf.Bytes()
		if compress {
			zr, err := gzip.NewReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		es := readNewc(t, raw)
		want := []struct {
			name string
			mode uint32
		}{{"dev", 0o40755}, {"proc", 0o40755}, {"sys", 0o40755}, {"dev/console", 0o20600}, {"init", 0o100755}}
		if len(es) != len(want) {
			t.Fatalf("%d entries; want %d", len(es), len(want))
		}
		seen := map[uint32]bool{}
		for i, w := range want {
			e := es[i]
			if e.name != w.name || e.mode != w.mode {
				t.Errorf("entry %d: %s %o; want %s %o", i, e.name, e.mode, w.name, w.mode)
			}
			if seen[e.inode] {
				t.Errorf("%s: inode %d reused", e.name, e.inode)
			}
			seen[e.inode] = true
		}
		if c := es[3]; c.rmaj != 5 || c.rmin != 1 {
			t.Errorf("dev/console is %d,%d; want 5,1", c.rmaj, c.rmin)
		}
		if !bytes.Equal(es[4].data, initProg) {
			t.Errorf("init contents %q", es[4].data)
		}
		// Where the cpio program is installed, it must agree.
		if cpio, err := exec.LookPath("cpio"); err == nil && !compress {
			cmd := exec.Command(cpio, "-t", "--quiet")
			cmd.Stdin = bytes.NewReader(raw)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("cpio -t: %v", err)
			}
			if got := strings.Fields(string(out)); strings.Join(got, " ") != "dev proc sys dev/console init" {
				t.Errorf("cpio -t lists %q", got)
			}
		}
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter(io.Discard)
	for _, name := range []string{"", "../etc/passwd", "a/../../b", "a\x00b"} {
		if err := w.File(name, 0o644, nil); err == nil {
			t.Errorf("File(%q) accepted", name)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Dir("late", 0o755); err == nil {
		t.Error("Dir after Close accepted")
	}
}
