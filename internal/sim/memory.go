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
	n := 0
	for n < len(b) {
		a := addr + uint64(n)
		if a < addr { // wrapped around the address space
			break
		}
		r := m.find(a)
		if r == nil {
			break
		}
		page := a &^ (PageSize - 1)
		off := int(a - page)
		// Stay within the page and the region.
		end := min(len(b), n+PageSize-off)
		if lim := r.base + r.size - a; uint64(end-n) > lim {
			end = n + int(lim)
		}
		if p := m.pages[page]; p != nil {
			copy(b[n:end], p[off:])
		} else {
			for i := n; i < end; i++ {
				if r.fill != nil {
					b[i] = r.fill(addr + uint64(i))
				} else {
					b[i] = 0
				}
			}
		}
		n = end
	}
	return n
}

// Write stores b at addr and returns how many bytes were writable. With
// force, read-only regions are written too (used to build the image).
func (m *Memory) write(addr uint64, b []byte, force bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for n < len(b) {
		a := addr + uint64(n)
		if a < addr {
			break
		}
		r := m.find(a)
		if r == nil || (!r.writable && !force) {
			break
		}
		page := a &^ (PageSize - 1)
		off := int(a - page)
		end := min(len(b), n+PageSize-off)
		if lim := r.base + r.size - a; uint64(end-n) > lim {
			end = n + int(lim)
		}
		p := m.pages[page]
		if p == nil {
			p = new([PageSize]byte)
			if r.fill != nil {
				for i := range p {
					if pa := page + uint64(i); pa >= r.base && pa-r.base < r.size {
						p[i] = r.fill(pa)
					}
				}
			}
			m.pages[page] = p
		}
		copy(p[off:], b[n:end])
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
