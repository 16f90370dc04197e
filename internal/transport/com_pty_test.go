//go:build linux

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"kdsrv/internal/commux"
)

// ptyCable is a null-modem cable made of two pseudo-terminals: the slave
// of each is one side's serial device (A and B), opened by the transport
// through the serial package, and a relay copies between the two masters.
// The relay can corrupt bytes (SetNoise). It stops at the test's cleanup.
type ptyCable struct {
	A, B string

	ma, mb    *os.File
	noise     atomic.Uint64 // math.Float64bits of the per-byte error rate
	corrupted atomic.Uint64
	relayed   atomic.Uint64
	stop      chan struct{}
	wg        sync.WaitGroup
}

// comOpenMaster opens a pseudo-terminal and returns its master as a pollable
// file (so Close unblocks Read) and the slave's path. The slave is closed:
// the side under test opens it.
func comOpenMaster(t *testing.T) (*os.File, string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	name := slave.Name()
	slave.Close()
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) }); err != nil {
		t.Fatal(err)
	}
	master.Close()
	if derr != nil {
		t.Fatal(derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "ptmx"), name
}

func newPTYCable(t *testing.T) *ptyCable {
	c := &ptyCable{stop: make(chan struct{})}
	c.ma, c.A = comOpenMaster(t)
	c.mb, c.B = comOpenMaster(t)
	c.wg.Add(2)
	go c.pump(c.mb, c.ma, 1)
	go c.pump(c.ma, c.mb, 2)
	t.Cleanup(func() {
		close(c.stop)
		c.ma.Close()
		c.mb.Close()
		c.wg.Wait()
		t.Logf("cable: %d bytes relayed, %d corrupted", c.relayed.Load(), c.corrupted.Load())
	})
	return c
}

// SetNoise makes the relay corrupt each byte with probability rate.
func (c *ptyCable) SetNoise(rate float64) { c.noise.Store(math.Float64bits(rate)) }

func (c *ptyCable) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// pump copies src to dst. While a side's device is not open, its master
// reports EIO: the relay waits and drops what it cannot deliver, like a
// cable to a port nobody has opened.
func (c *ptyCable) pump(dst, src *os.File, seed uint64) {
	defer c.wg.Done()
	rng := rand.New(rand.NewPCG(seed, 0x6b64737276))
	buf := make([]byte, 4096)
	for !c.stopped() {
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
		rate := math.Float64frombits(c.noise.Load())
		for i := range buf[:n] {
			if rate > 0 && rng.Float64() < rate {
				buf[i] ^= byte(1 + rng.IntN(255))
				c.corrupted.Add(1)
			}
		}
		c.relayed.Add(uint64(n))
		_ = dst.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := dst.Write(buf[:n]); err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// TestCOMOverPTY: three kdsrv channels on one pseudo-terminal, three
// clients on the other end of a relayed cable with one byte in a thousand
// corrupted; every stream arrives intact, and the line shows the
// checksum errors it recovered from.
func TestCOMOverPTY(t *testing.T) {
	comNoLeaks(t)
	cable := newPTYCable(t)
	cable.SetNoise(1e-3)
	// Small frames and a short timer: at this error rate most 1024-byte
	// frames are hit, and the default timers make the test crawl.
	ports := &COMPorts{Config: commux.Config{MaxFrame: 128, RetransmitTimeout: 50 * time.Millisecond}}
	ctx := context.Background()
	channels := []int{0, 42, 254}
	for _, ch := range channels {
		ln, err := Listen(ctx, serverT(t, fmt.Sprintf("com:port=%s,baud=115200,channel=%d", cable.A, ch)), Options{COM: ports})
		if err != nil {
			t.Fatal(err)
		}
		comEchoServe(t, ln)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(channels))
	for i, ch := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			c, err := (&Dialer{COM: ports}).Dial(dctx, clientT(t, fmt.Sprintf("com:port=%s,baud=115200,channel=%d", cable.B, ch)))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := make([]byte, 64<<10)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for j := range msg {
				msg[j] = byte(rng.Uint32())
			}
			werr := make(chan error, 1)
			go func() { _, err := c.Write(msg); werr <- err }()
			got := make([]byte, len(msg))
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("channel %d: %w (line %+v)", ch, err, c.(COMLine).LineStats())
				c.Close()
				<-werr
				return
			}
			if err := <-werr; err != nil {
				errs <- fmt.Errorf("channel %d: write: %w", ch, err)
			}
			for j := range msg {
				if got[j] != msg[j] {
					errs <- fmt.Errorf("channel %d: byte %d differs", ch, j)
					return
				}
			}
			if i == 0 {
				st := c.(COMLine).LineStats()
				t.Logf("client line: %+v", st)
				if cable.corrupted.Load() > 0 && st.CRCErrors+st.BadHeaders+st.Resyncs == 0 {
					errs <- fmt.Errorf("the cable corrupted %d bytes but the line saw no errors", cable.corrupted.Load())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cable.corrupted.Load() == 0 {
		t.Error("the relay corrupted nothing; the noise test proved nothing")
	}
}
