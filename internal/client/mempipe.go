package client

import (
	"io"
	"sync"
)

// memPipeLimit bounds the bytes one direction of a memPipe holds before a
// writer waits for the reader.
const memPipeLimit = 1 << 20

// memPipe returns the two ends of a buffered in-memory byte stream: what is
// written on one end is read on the other. Unlike net.Pipe a write does not
// wait for the reader to take the bytes (up to memPipeLimit per direction),
// so the in-process debugger and the bridge's KD link hand each packet over
// once instead of meeting for every write, and no per-write deadline timer
// is set. Closing either end closes both directions: the other end reads
// what is left, then io.EOF, and its writes fail with io.ErrClosedPipe.
func memPipe() (a, z io.ReadWriteCloser) {
	ab, za := newPipeBuf(), newPipeBuf()
	return &memEnd{r: za, w: ab}, &memEnd{r: ab, w: za}
}

// pipeBuf is one direction of a memPipe.
type pipeBuf struct {
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte // unread bytes are buf[off:]
	off    int
	closed bool
}

func newPipeBuf() *pipeBuf {
	p := &pipeBuf{}
	p.cond.L = &p.mu
	return p
}

func (p *pipeBuf) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.off == len(p.buf) && !p.closed {
		p.cond.Wait()
	}
	if p.off == len(p.buf) {
		return 0, io.EOF
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.buf, p.off = p.buf[:0], 0 // keep the array: no allocation in steady state
	}
	p.cond.Broadcast() // a writer may wait for room
	return n, nil
}

func (p *pipeBuf) write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf)-p.off >= memPipeLimit && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return 0, io.ErrClosedPipe
	}
	p.buf = append(p.buf, b...)
	p.cond.Broadcast()
	return len(b), nil
}

func (p *pipeBuf) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// memEnd is one end of a memPipe.
type memEnd struct {
	r, w *pipeBuf
	once sync.Once
}

func (e *memEnd) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return e.r.read(b)
}

func (e *memEnd) Write(b []byte) (int, error) { return e.w.write(b) }

// Close closes both directions; it is safe to call more than once.
func (e *memEnd) Close() error {
	e.once.Do(func() {
		e.w.close()
		e.r.close()
	})
	return nil
}

func (e *memEnd) String() string { return "in-process debugger pipe" }
