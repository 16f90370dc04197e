//go:build unix

package testkit

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PTYCable is a null-modem cable made of two pseudo-terminals: the slave
// of each (A and B) is one side's serial device, opened by the code under
// test, and a relay copies between the two masters. The relay can corrupt
// bytes (SetNoise). While a side's device is not open its master reports
// EIO: the relay waits and drops what it cannot deliver, like a cable to a
// port nobody has opened.
type PTYCable struct {
	A, B string // device paths of the two ends

	ma, mb    *os.File
	noise     atomic.Uint64 // math.Float64bits of the per-byte error rate
	corrupted atomic.Uint64
	relayed   atomic.Uint64
	stop      chan struct{} // closed when the relay stops
	stopped   atomic.Bool   // set when stop is closed
	wg        sync.WaitGroup
}

// NewPTYCable starts the relay of a new cable. It stops when the test
// ends, after the cleanups registered later (servers and clients using the
// devices); the test is skipped where there are no pseudo-terminals.
func NewPTYCable(t testing.TB) *PTYCable {
	t.Helper()
	c := &PTYCable{stop: make(chan struct{})}
	c.ma, c.A = PTY(t)
	c.mb, c.B = PTY(t)
	c.wg.Add(2)
	go c.pump(c.mb, c.ma, 1)
	go c.pump(c.ma, c.mb, 2)
	t.Cleanup(func() {
		c.stopped.Store(true)
		close(c.stop)
		c.ma.Close()
		c.mb.Close()
		c.wg.Wait()
		t.Logf("cable: %d bytes relayed, %d corrupted", c.relayed.Load(), c.corrupted.Load())
	})
	return c
}

// SetNoise makes the relay corrupt each byte with probability rate.
func (c *PTYCable) SetNoise(rate float64) { c.noise.Store(math.Float64bits(rate)) }

// Corrupted is the number of bytes the relay has corrupted.
func (c *PTYCable) Corrupted() uint64 { return c.corrupted.Load() }

// Relayed is the number of bytes the relay has copied.
func (c *PTYCable) Relayed() uint64 { return c.relayed.Load() }

// pump copies src to dst, corrupting bytes at the noise rate.
func (c *PTYCable) pump(dst, src *os.File, seed uint64) {
	defer c.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 0x6b64737276))
	buf := make([]byte, 4096)
	for !c.stopped.Load() {
		n, err := src.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.EIO) || errors.Is(err, io.EOF) {
				select {
				case <-c.stop:
				case <-time.After(2 * time.Millisecond):
				}
				continue
			}
			return
		}
		if rate := math.Float64frombits(c.noise.Load()); rate > 0 {
			for i := range buf[:n] {
				if rng.Float64() < rate {
					buf[i] ^= byte(1 + rng.IntN(255))
					c.corrupted.Add(1)
				}
			}
		}
		c.relayed.Add(uint64(n))
		_ = dst.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := dst.Write(buf[:n]); err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}
