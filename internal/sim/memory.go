package sim

import (
	"encoding/binary"
	"sort"
	"sync"
)

// PageSize is the granularity of the simulated address space.
const PageSize = 4096

// region is a mapped range of the simulated address space. Pages that were
// never written read as the region's fill function.
type region struct {
	name     string
	base     uint64
	size     uint64
	writable bool
	fill     func(addr uint64) byte // nil = zeros
}

// Memory is a sparse 64-bit address space: a few mapped regions whose pages
// are materialised on first write. Reads of unmapped addresses stop short,
// as on a real target.
type Memory struct {
	mu      sync.Mutex
	regions []region                   // sorted by base
	pages   map[uint64]*[PageSize]byte // written pages, by page address
}

func newMemory() *Memory {
	return &Memory{pages: make(map[uint64]*[PageSize]byte)}
}

// Map adds a region. Regions must not overlap.
func (m *Memory) Map(name string, base, size uint64, writable bool, fill func(uint64) byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.regions = append(m.regions, region{name: name, base: base, size: size, writable: writable, fill: fill})
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].base < m.regions[j].base })
}

func (m *Memory) find(addr uint64) *region {
	i := sort.Search(len(m.regions), func(i int) bool { return m.regions[i].base+m.regions[i].size > addr })
	if i < len(m.regions) && m.regions[i].base <= addr {
		return &m.regions[i]
	}
	return nil
}

// Mapped reports whether addr is inside a region, and whether it is writable.
func (m *Memory) Mapped(addr uint64) (mapped, writable bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.find(addr)
	if r == nil {
		return false, false
	}
	return true, r.writable
}

// Read copies memory at addr into b and returns how many bytes were
// readable (it stops at the first unmapped byte).
func (m *Memory) Read(addr uint64, b []byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pieces(addr, len(b), false, func(r *region, page uint64, off, lo, hi int) {
		if p := m.pages[page]; p != nil {
			copy(b[lo:hi], p[off:])
			return
		}
		for i := lo; i < hi; i++ {
			if r.fill != nil {
				b[i] = r.fill(addr + uint64(i))
			} else {
				b[i] = 0
			}
		}
	})
}

// Write stores b at addr and returns how many bytes were writable. With
// force, read-only regions are written too (used to build the image).
func (m *Memory) write(addr uint64, b []byte, force bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pieces(addr, len(b), !force, func(r *region, page uint64, off, lo, hi int) {
		p := m.pages[page]
		if p == nil {
			// The page starts as it reads: each byte from the region
			// that holds it (a page may be shared by two regions).
			p = new([PageSize]byte)
			whole := r.base <= page && page-r.base+PageSize <= r.size
			for i := range p {
				pr := r
				if !whole {
					pr = m.find(page + uint64(i))
				}
				if pr != nil && pr.fill != nil {
					p[i] = pr.fill(page + uint64(i))
				}
			}
			m.pages[page] = p
		}
		copy(p[off:], b[lo:hi])
	})
}

// pieces cuts the size bytes at addr into pieces that each lie in one page
// of one region and calls f with each, in order: bytes lo to hi of the
// range, at offset off of the page. It stops at the first byte that is
// unmapped (or, with writable, read-only) and at the end of the address
// space, and returns how many bytes the pieces cover. The caller holds
// m.mu.
func (m *Memory) pieces(addr uint64, size int, writable bool, f func(r *region, page uint64, off, lo, hi int)) int {
	n := 0
	for n < size {
		a := addr + uint64(n)
		if a < addr { // wrapped around the address space
			break
		}
		r := m.find(a)
		if r == nil || (writable && !r.writable) {
			break
		}
		page := a &^ (PageSize - 1)
		off := int(a - page)
		// Stay within the page and the region.
		end := min(size, n+PageSize-off)
		if lim := r.base + r.size - a; uint64(end-n) > lim {
			end = n + int(lim)
		}
		f(r, page, off, n, end)
		n = end
	}
	return n
}

// Write stores b at addr in writable regions; it returns the count written.
func (m *Memory) Write(addr uint64, b []byte) int { return m.write(addr, b, false) }

func (m *Memory) put64(addr, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	m.write(addr, b[:], true)
}

func (m *Memory) put32(addr uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	m.write(addr, b[:], true)
}

// PagesWritten reports how many pages have been materialised.
func (m *Memory) PagesWritten() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pages)
}
