package commux

import (
	"fmt"
	"io"
	"sync"
)

// Registry shares one Mux per serial port within a process, so several
// `-t com:port=P,...,channel=N` transports with the same port and different
// channels use one multiplexer. The zero value is ready to use, with
// DefaultConfig; set Config before the first Get to change it.
type Registry struct {
	// Config is used for every Mux the registry creates; Name is set to
	// the port path.
	Config Config

	mu    sync.Mutex
	ports map[string]*regEntry
}

type regEntry struct {
	mux  *Mux
	baud int
	refs int
}

// Get returns the Mux for path, creating it with open on first use. Callers
// must call release exactly once when they no longer need the Mux; the last
// release closes it (and with it the port). Asking for a port that is already
// open at a different baud rate is an error: both transports must agree.
// Get returns the shared Mux even if its line has failed (see Mux.Done and
// Mux.Err); once every holder has released it, the next Get opens the port
// again.
func (r *Registry) Get(path string, baud int, open func() (io.ReadWriteCloser, error)) (*Mux, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ports == nil {
		r.ports = make(map[string]*regEntry)
	}
	e := r.ports[path]
	if e != nil && e.refs > 0 {
		if e.baud != baud {
			return nil, nil, fmt.Errorf("commux: %s is already open at %d baud by another COM transport of this process; use baud=%d for every channel on that port", path, e.baud, e.baud)
		}
	} else {
		rw, err := open()
		if err != nil {
			return nil, nil, err
		}
		cfg := r.Config
		cfg.Name = path
		e = &regEntry{mux: New(rw, cfg), baud: baud}
		r.ports[path] = e
	}
	e.refs++
	var once sync.Once
	release := func() { once.Do(func() { r.release(path, e) }) }
	return e.mux, release, nil
}

func (r *Registry) release(path string, e *regEntry) {
	r.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last && r.ports[path] == e {
		delete(r.ports, path)
	}
	r.mu.Unlock()
	if last {
		e.mux.Close()
	}
}
