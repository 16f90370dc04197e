package sim

import (
	"bytes"
	"testing"
)

// Reads and writes stop at the first byte they may not touch, and a
// piece never takes its content from the wrong region, even where two
// regions share a page.
func TestMemoryRegionEdges(t *testing.T) {
	const (
		roBase = 0x1000 // read-only, pattern, up to the middle of a page
		rwBase = 0x2800 // writable, zero, right after it in the same page
		rwEnd  = 0x3000
	)
	newMem := func() *Memory {
		m := newMemory()
		m.Map("ro", roBase, rwBase-roBase, false, Pattern)
		m.Map("rw", rwBase, rwEnd-rwBase, true, nil)
		return m
	}
	want := func(addr uint64, n int) []byte { // what a fresh memory holds
		b := make([]byte, n)
		for i := range b {
			if a := addr + uint64(i); a < rwBase {
				b[i] = Pattern(a)
			}
		}
		return b
	}
	cases := []struct {
		name      string
		op        func(m *Memory) int
		wantN     int
		readAfter uint64 // read 0x400 bytes here afterwards, expecting after
		after     []byte
	}{
		{"read across the two regions", func(m *Memory) int { return m.Read(rwBase-0x100, make([]byte, 0x200)) }, 0x200,
			rwBase - 0x100, want(rwBase-0x100, 0x200)},
		{"read stops at unmapped", func(m *Memory) int { return m.Read(rwEnd-0x10, make([]byte, 0x20)) }, 0x10,
			rwEnd - 0x10, want(rwEnd-0x10, 0x10)},
		{"read of unmapped", func(m *Memory) int { return m.Read(0x800, make([]byte, 0x10)) }, 0, 0, nil},
		{"write to read-only", func(m *Memory) int { return m.Write(rwBase-0x100, bytes.Repeat([]byte{7}, 0x200)) }, 0,
			rwBase - 0x100, want(rwBase-0x100, 0x200)},
		{"write stops at unmapped", func(m *Memory) int { return m.Write(rwEnd-0x10, bytes.Repeat([]byte{7}, 0x20)) }, 0x10,
			rwEnd - 0x20, append(make([]byte, 0x10), bytes.Repeat([]byte{7}, 0x10)...)},
		{"forced write to read-only", func(m *Memory) int { return m.write(rwBase-0x100, bytes.Repeat([]byte{7}, 0x200), true) }, 0x200,
			rwBase - 0x180, append(want(rwBase-0x180, 0x80), bytes.Repeat([]byte{7}, 0x200)...)},
		{"write keeps the page's other region", func(m *Memory) int { return m.Write(rwBase, []byte{7}) }, 1,
			rwBase - 0x10, append(want(rwBase-0x10, 0x10), 7, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMem()
			if n := c.op(m); n != c.wantN {
				t.Fatalf("moved %d bytes; want %d", n, c.wantN)
			}
			got := make([]byte, len(c.after))
			if n := m.Read(c.readAfter, got); n != len(got) || !bytes.Equal(got, c.after) {
				t.Fatalf("memory at %#x afterwards (%d bytes readable):\n% x\nwant\n% x", c.readAfter, n, got, c.after)
			}
		})
	}
}
