package simtest

import (
	"strings"
	"sync"
)

// Prints collects the DbgPrint lines a debugger receives: give its
// OnPrint to kd.HostOptions.
type Prints struct {
	mu    sync.Mutex
	lines []string
}

// OnPrint takes one DbgPrint line.
func (p *Prints) OnPrint(cpu uint16, text []byte) {
	p.mu.Lock()
	p.lines = append(p.lines, string(text))
	p.mu.Unlock()
}

// Ticking reports whether at least two lines arrived, the first of them
// the periodic print of a running simulated machine ("kdtarget: tick N"),
// and how many lines arrived and the first, for a failure message.
func (p *Prints) Ticking() (ok bool, n int, first string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n = len(p.lines); n > 0 {
		first = p.lines[0]
	}
	return n >= 2 && strings.HasPrefix(first, "kdtarget: tick "), n, first
}
