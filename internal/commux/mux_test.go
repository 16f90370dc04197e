package commux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is fast enough for in-memory lines.
func testConfig(name string) Config {
	return Config{RetransmitTimeout: 30 * time.Millisecond, Window: 16, MaxFrame: 1024, KeepAlive: -1, Name: name}
}

// pair starts two muxes joined by a and b and closes them when the test
// ends.
func pair(t testing.TB, a, b io.ReadWriteCloser, ca, cb Config) (*Mux, *Mux) {
	t.Helper()
	ma, mb := New(a, ca), New(b, cb)
	t.Cleanup(func() { ma.Close(); mb.Close() })
	return ma, mb
}

func pipePair(t testing.TB, cfg Config) (*Mux, *Mux) {
	a, b := net.Pipe()
	ca, cb := cfg, cfg
	ca.Name, cb.Name = "pipeA", "pipeB"
	return pair(t, a, b, ca, cb)
}

// pseudoRandom returns n reproducible bytes for a seed.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// exchange sends data over c while reading want from it, then closes c.
func exchange(c net.Conn, data []byte, want int) ([32]byte, error) {
	if err := c.SetDeadline(time.Now().Add(90 * time.Second)); err != nil {
		return [32]byte{}, err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	h := sha256.New()
	n, rerr := io.CopyN(h, c, int64(want))
	if err := <-werr; err != nil {
		return [32]byte{}, fmt.Errorf("write: %w", err)
	}
	if rerr != nil {
		return [32]byte{}, fmt.Errorf("read after %d of %d bytes: %w", n, want, rerr)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// runStreams carries size bytes each way on each channel concurrently and
// checks every stream byte for byte.
func runStreams(t *testing.T, client, server *Mux, channels []int, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(channels))
	for _, ch := range channels {
		l, err := server.Listen(ch)
		if err != nil {
			t.Fatalf("Listen(%d): %v", ch, err)
		}
		defer l.Close()
		up := pseudoRandom(uint64(ch)*2+1, size)
		down := pseudoRandom(uint64(ch)*2+2, size)
		wg.Add(2)
		// side opens its end of channel ch (op names how), sends send while
		// reading size bytes that must be expect, and closes its end.
		side := func(op, who string, open func() (net.Conn, error), send, expect []byte, dir string) {
			defer wg.Done()
			c, err := open()
			if err != nil {
				errs <- fmt.Errorf("ch %d %s: %w", ch, op, err)
				return
			}
			defer c.Close()
			sum, err := exchange(c, send, size)
			if err != nil {
				errs <- fmt.Errorf("ch %d %s: %w", ch, who, err)
				return
			}
			if sum != sha256.Sum256(expect) {
				errs <- fmt.Errorf("ch %d: %s stream corrupted", ch, dir)
			}
		}
		go side("accept", "server", l.Accept, down, up, "client-to-server")
		go side("dial", "client", func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return client.Dial(ctx, ch)
		}, up, down, "server-to-client")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStreamsOverPipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		runStreams(t, client, server, []int{0, 7, 254}, 1<<20)
		st := client.Stats()
		if st.FramesSent == 0 || st.FramesReceived == 0 || st.CRCErrors != 0 {
			t.Fatalf("unexpected stats on a clean line: %+v", st)
		}
	})
}

// noisyLine corrupts what is written through it: bytes are flipped, dropped
// and duplicated at the given rates, reproducibly.
type noisyLine struct {
	io.ReadWriteCloser
	mu               sync.Mutex
	r                *rand.Rand
	flip, drop, dupl float64
	out              []byte
}

func newNoisy(rw io.ReadWriteCloser, seed uint64, flip, drop, dupl float64) *noisyLine {
	return &noisyLine{ReadWriteCloser: rw, r: rand.New(rand.NewPCG(seed, 1)), flip: flip, drop: drop, dupl: dupl}
}

func (n *noisyLine) Write(p []byte) (int, error) {
	n.mu.Lock()
	out := n.out[:0]
	for _, b := range p {
		x := n.r.Float64()
		switch {
		case x < n.flip:
			out = append(out, b^byte(1+n.r.IntN(255)))
		case x < n.flip+n.drop:
		case x < n.flip+n.drop+n.dupl:
			out = append(out, b, b)
		default:
			out = append(out, b)
		}
	}
	n.out = out
	n.mu.Unlock()
	if _, err := n.ReadWriteCloser.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func TestStreamsOverNoisyLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		cfg := testConfig("")
		cfg.MaxFrame = 256
		ca, cb := cfg, cfg
		ca.Name, cb.Name = "noisyA", "noisyB"
		client, server := pair(t, newNoisy(a, 1, 1e-3, 2e-4, 2e-4), newNoisy(b, 2, 1e-3, 2e-4, 2e-4), ca, cb)
		runStreams(t, client, server, []int{1, 2, 3}, 256<<10)
		cs, ss := client.Stats(), server.Stats()
		t.Logf("client %+v", cs)
		t.Logf("server %+v", ss)
		if cs.CRCErrors+ss.CRCErrors == 0 {
			t.Error("no CRC errors counted on a noisy line")
		}
		if cs.Retransmits+ss.Retransmits == 0 {
			t.Error("no retransmissions on a noisy line")
		}
		if cs.Resyncs+ss.Resyncs == 0 {
			t.Error("no resynchronisations on a noisy line")
		}
	})
}

// slowLine limits the bytes per second written through it, like a serial
// line, so that channels compete for it.
type slowLine struct {
	io.ReadWriteCloser
	perMs int // bytes per millisecond
}

func (s slowLine) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, s.perMs)
		if _, err := s.ReadWriteCloser.Write(p[n : n+k]); err != nil {
			return n, err
		}
		n += k
		time.Sleep(time.Millisecond)
	}
	return n, nil
}

func TestFairness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		cfg := testConfig("")
		cfg.RetransmitTimeout = 200 * time.Millisecond
		ca, cb := cfg, cfg
		ca.Name, cb.Name = "slowA", "slowB"
		client, server := pair(t, slowLine{a, 256}, slowLine{b, 256}, ca, cb)

		bulkL, _ := server.Listen(1)
		echoL, _ := server.Listen(2)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var closers []io.Closer
		defer func() {
			close(stop)
			bulkL.Close()
			echoL.Close()
			for _, c := range closers {
				c.Close()
			}
			wg.Wait()
		}()

		// serve hands the first connection l accepts to use.
		serve := func(l net.Listener, use func(net.Conn)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				use(c)
			}()
		}

		// Channel 1: the server drains everything, the client writes flat out.
		serve(bulkL, func(c net.Conn) { io.Copy(io.Discard, c) })
		bulk, err := client.Dial(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, bulk)
		var bulkBytes atomic.Int64
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk := make([]byte, 4096)
			for {
				select {
				case <-stop:
					return
				default:
				}
				bulk.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := bulk.Write(chunk)
				bulkBytes.Add(int64(n))
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
			}
		}()

		// Channel 2: small request/response round trips.
		serve(echoL, func(c net.Conn) { io.Copy(c, c) })
		echo, err := client.Dial(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, echo)
		const rounds = 20
		echo.SetDeadline(time.Now().Add(20 * time.Second))
		done := 0
		msg := []byte("what is the state of the target?")
		for ; done < rounds; done++ {
			if _, err := echo.Write(msg); err != nil {
				break
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(echo, got); err != nil || !bytes.Equal(got, msg) {
				break
			}
		}
		if done != rounds {
			t.Fatalf("only %d of %d round trips completed next to a saturating channel", done, rounds)
		}
		if bulkBytes.Load() < 16<<10 {
			t.Fatalf("the bulk channel moved only %d bytes", bulkBytes.Load())
		}
	})
}

func TestDialNoListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		if _, err := server.Listen(3); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Dial(ctx, 7)
		if !errors.Is(err, ErrNoListener) {
			t.Fatalf("Dial: %v, want ErrNoListener", err)
		}
		if want := "no kdsrv listening on COM channel 7 of pipeA"; !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
		// The channel can be dialled again once someone listens.
		l, err := server.Listen(7)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := client.Dial(ctx, 7)
		if err != nil {
			t.Fatalf("Dial after Listen: %v", err)
		}
		c.Close()
	})
}

func TestChannelChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		ctx := context.Background()
		for _, ch := range []int{-1, 255, 256, 1000} {
			if _, err := server.Listen(ch); !errors.Is(err, ErrChannel) {
				t.Errorf("Listen(%d): %v, want ErrChannel", ch, err)
			}
			if _, err := client.Dial(ctx, ch); !errors.Is(err, ErrChannel) {
				t.Errorf("Dial(%d): %v, want ErrChannel", ch, err)
			}
		}
		l, err := server.Listen(0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.Listen(0); !errors.Is(err, ErrInUse) {
			t.Fatalf("second Listen(0): %v, want ErrInUse", err)
		}
		l.Close()
		l, err = server.Listen(0)
		if err != nil {
			t.Fatalf("Listen after Close: %v", err)
		}
		defer l.Close()
		c, err := client.Dial(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := client.Dial(ctx, 0); !errors.Is(err, ErrInUse) {
			t.Fatalf("second Dial(0) while open: %v, want ErrInUse", err)
		}
	})
}

func TestAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		l, _ := server.Listen(42)
		defer l.Close()
		if got := l.Addr().String(); got != "com:pipeB#42" {
			t.Errorf("listener Addr %q", got)
		}
		c, err := client.Dial(context.Background(), 42)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.LocalAddr().Network() != "com" || c.LocalAddr().String() != "com:pipeA#42" || c.RemoteAddr().String() != "com:pipeA#42" {
			t.Errorf("conn addresses %v %v", c.LocalAddr(), c.RemoteAddr())
		}
	})
}

// connect listens on channel ch of server, dials it from client and
// accepts: c is the client's end, s the server's. The listener and both
// ends close when the test ends.
func connect(t *testing.T, client, server *Mux, ch int) (c, s net.Conn, l net.Listener) {
	t.Helper()
	l, err := server.Listen(ch)
	if err != nil {
		t.Fatalf("Listen(%d): %v", ch, err)
	}
	t.Cleanup(func() { l.Close() })
	c, err = client.Dial(context.Background(), ch)
	if err != nil {
		t.Fatalf("Dial(%d): %v", ch, err)
	}
	t.Cleanup(func() { c.Close() })
	s = accept1(t, l)
	t.Cleanup(func() { s.Close() })
	return c, s, l
}

// accept1 accepts one connection with a time bound.
func accept1(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	r := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		r <- res{c, err}
	}()
	select {
	case x := <-r:
		if x.err != nil {
			t.Fatalf("Accept: %v", x.err)
		}
		return x.c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept timed out")
		return nil
	}
}

func TestCloseAndRedial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		l, _ := server.Listen(5)
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for round := 0; round < 5; round++ {
			c, err := client.Dial(ctx, 5)
			if err != nil {
				t.Fatalf("round %d: Dial: %v", round, err)
			}
			s := accept1(t, l)
			msg := fmt.Sprintf("round %d", round)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			s.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(s) // data, then EOF from the CLOSE
			if err != nil || string(got) != msg {
				t.Fatalf("round %d: server read %q, %v", round, got, err)
			}
			if round%2 == 0 {
				s.Close() // odd rounds re-dial while the server still holds its end
			}
		}
	})
}

func TestRedialReplacesStaleServerConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		l, _ := server.Listen(9)
		defer l.Close()
		ctx := context.Background()
		c1, err := client.Dial(ctx, 9)
		if err != nil {
			t.Fatal(err)
		}
		s1 := accept1(t, l)
		c1.Close()
		c2, err := client.Dial(ctx, 9)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		s2 := accept1(t, l)
		defer s2.Close()
		// The old server end learns the peer is gone: reads end.
		s1.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(s1); err != nil && !errors.Is(err, ErrReset) {
			t.Fatalf("old server conn: %v", err)
		}
		s1.Close()
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		s2.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := s2.Write([]byte("new")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "new" {
			t.Fatalf("new conn read %q, %v", buf, err)
		}
	})
}

func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		c, s, _ := connect(t, client, server, 1)

		var b [8]byte
		c.SetReadDeadline(time.Now().Add(-time.Second))
		start := time.Now()
		_, err := c.Read(b[:])
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("past read deadline: %v", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("deadline error %v is not a net.Error timeout", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("past deadline was not prompt")
		}

		// A pending read ends at its deadline.
		c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("pending read: %v", err)
		}
		// Extending the deadline from another goroutine lets a read succeed.
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(20 * time.Millisecond)
			s.Write([]byte("x"))
		}()
		if n, err := c.Read(b[:]); err != nil || n != 1 {
			t.Fatalf("read after clearing deadline: %d, %v", n, err)
		}

		// Writes block once the peer stops reading; the deadline ends them.
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		big := make([]byte, 1<<20)
		n, err := c.Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= len(big) {
			t.Fatalf("blocked write: n=%d err=%v", n, err)
		}
	})
}

func TestEOFAndHalfClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		c, s, _ := connect(t, client, server, 1)
		s.SetDeadline(time.Now().Add(10 * time.Second))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// Server answers, then closes; the client reads the answer and EOF.
		if _, err := s.Write([]byte("bye")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after EOF: %v", err)
		}
		c.Close()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after Close: %v", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestCloseUnblocksEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		l, _ := server.Listen(1)
		l2, _ := server.Listen(2)
		c, err := client.Dial(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		s1 := accept1(t, l)
		defer s1.Close()

		// Conn.Close unblocks a pending Read on that conn.
		cr := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 1)); cr <- err }()
		synctest.Wait() // the Read is blocked
		c.Close()
		if err := waitErr(t, cr); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Conn.Close: %v", err)
		}

		// Mux.Close unblocks Accept, Read and Write on the server side.
		c3, err := client.Dial(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		s := accept1(t, l)
		defer s.Close()
		acc := make(chan error, 1)
		go func() { _, err := l2.Accept(); acc <- err }()
		sr := make(chan error, 1)
		go func() { _, err := io.ReadAll(s); sr <- err }()
		synctest.Wait() // Accept and Read are blocked
		if err := server.Close(); err != nil {
			t.Fatalf("Mux.Close: %v", err)
		}
		if err := waitErr(t, acc); err == nil {
			t.Fatal("Accept returned no error after Mux.Close")
		}
		if err := waitErr(t, sr); !errors.Is(err, ErrMuxClosed) {
			t.Fatalf("Read after Mux.Close: %v", err)
		}
		if err := server.Close(); !errors.Is(err, ErrMuxClosed) {
			t.Fatalf("second Mux.Close: %v", err)
		}
		if _, err := server.Listen(3); !errors.Is(err, ErrMuxClosed) {
			t.Fatalf("Listen after Close: %v", err)
		}
		// The client side sees the line go away.
		select {
		case <-client.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("client mux did not notice the closed line")
		}
		if !errors.Is(client.Err(), ErrMuxClosed) {
			t.Fatalf("client Err: %v", client.Err())
		}
	})
}

func waitErr(t *testing.T, c chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("operation still blocked")
		return nil
	}
}

// deafLine accepts writes and never delivers anything: a cable to nowhere.
type deafLine struct {
	closed chan struct{}
	once   sync.Once
}

func newDeaf() *deafLine                        { return &deafLine{closed: make(chan struct{})} }
func (d *deafLine) Read([]byte) (int, error)    { <-d.closed; return 0, io.EOF }
func (d *deafLine) Write(p []byte) (int, error) { return len(p), nil }
func (d *deafLine) Close() error                { d.once.Do(func() { close(d.closed) }); return nil }

func TestDialUnansweredLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("/dev/ttyS9")
		cfg.RetransmitTimeout = 2 * time.Millisecond
		m := New(newDeaf(), cfg)
		defer m.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := m.Dial(ctx, 4); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial with short context: %v", err)
		}
		// Without a context deadline the retries give up on their own.
		_, err := m.Dial(context.Background(), 4)
		if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "/dev/ttyS9") {
			t.Fatalf("Dial to a silent line: %v", err)
		}
	})
}

func TestKeepAliveDetectsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		cfg := testConfig("")
		cfg.KeepAlive = 20 * time.Millisecond
		ga := &gate{ReadWriteCloser: a}
		client, server := pair(t, ga, b, cfg, cfg)
		c, _, _ := connect(t, client, server, 1)
		// Idle but alive: keep-alives keep the connection up (ten intervals
		// pass on the fake clock).
		time.Sleep(200 * time.Millisecond)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("still here")); err != nil {
			t.Fatalf("idle connection died: %v", err)
		}
		// Now the client stops hearing the server.
		ga.deafen()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("read from a silent peer: %v", err)
		}
	})
}

// gate drops everything read through it once deafened.
type gate struct {
	io.ReadWriteCloser
	mu   sync.Mutex
	deaf bool
}

func (g *gate) deafen() { g.mu.Lock(); g.deaf = true; g.mu.Unlock() }

func (g *gate) Read(p []byte) (int, error) {
	for {
		n, err := g.ReadWriteCloser.Read(p)
		g.mu.Lock()
		deaf := g.deaf
		g.mu.Unlock()
		if !deaf || err != nil {
			return n, err
		}
	}
}

func TestPeerRestartResetsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := pipePair(t, testConfig(""))
		_, s, _ := connect(t, client, server, 1)
		// A link RESET (what a restarted peer sends first) ends connections.
		client.mu.Lock()
		client.ctrl = append(client.ctrl, frame{kind: kindReset, ch: LinkChannel})
		client.mu.Unlock()
		client.kickWriter()
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(s); !errors.Is(err, ErrReset) {
			t.Fatalf("server read after peer restart: %v", err)
		}
	})
}

func TestConfigNormalize(t *testing.T) {
	cases := []struct {
		in, want Config
	}{
		{Config{}, DefaultConfig()},
		{Config{Window: 1000, MaxFrame: 5000, RetransmitTimeout: time.Second, KeepAlive: -1},
			Config{Window: 255, MaxFrame: MaxPayload, RetransmitTimeout: time.Second, KeepAlive: -1}},
		{Config{Window: 3, MaxFrame: 100}, Config{Window: 3, MaxFrame: 100, RetransmitTimeout: DefaultConfig().RetransmitTimeout, KeepAlive: DefaultConfig().KeepAlive}},
	}
	for _, tc := range cases {
		if got := tc.in.normalize(); got != tc.want {
			t.Errorf("normalize(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func BenchmarkMuxThroughput(b *testing.B) {
	client, server := pipePair(b, testConfig(""))
	l, _ := server.Listen(1)
	defer l.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := client.Dial(context.Background(), 1)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 32<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(b.N*len(chunk)) {
		b.Fatalf("received %d of %d bytes", n, b.N*len(chunk))
	}
}
