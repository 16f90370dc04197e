// Command flood opens many half-open connections to a kdsrv from one
// loopback source address and holds them, as an attacker exhausting the
// server's connections before authentication would. It is a helper of
// scripts/abuse.sh, not a tool for use against anyone else's server: it
// refuses any destination outside loopback.
//
//	go run ./scripts/flood -from 127.0.0.2 -to 127.0.0.1:5005 -n 5000 -hold 20s -probe 127.0.0.3
//
// It prints one line when the flood is in place ("flood: holding N ..."),
// then, with -probe, how long a client from the probe address takes to
// authenticate (password from KDSRV_PASSWORD) and run a command (GetInfo)
// while the flood is held, and one line when it ends, with how many
// connections the server turned away with an Error frame (Busy) or closed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"kdsrv/internal/wire"
)

func main() {
	from := flag.String("from", "127.0.0.2", "loopback source address of the flood")
	to := flag.String("to", "", "kdsrv's loopback address HOST:PORT")
	n := flag.Int("n", 5000, "connections to open (at most 50000)")
	hold := flag.Duration("hold", 20*time.Second, "how long to hold them (at most 10m)")
	hello := flag.Bool("hello", false, "send the first bytes of a Hello frame and stop there (slow loris), instead of nothing")
	probe := flag.String("probe", "", "loopback address of a legitimate client to time during the flood")
	probes := flag.Int("probes", 5, "how many times to time it (at most 100)")
	flag.Parse()
	pr = prober{from: *probe, n: min(max(*probes, 1), 100), password: os.Getenv("KDSRV_PASSWORD"), keys: wire.NewKeyCache()}
	if err := run(*from, *to, *n, *hold, *hello); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

func run(from, to string, n int, hold time.Duration, hello bool) error {
	src, err := netip.ParseAddr(from)
	if err != nil || !src.IsLoopback() {
		return fmt.Errorf("-from %q: give a loopback address such as 127.0.0.2", from)
	}
	dst, err := netip.ParseAddrPort(to)
	if err != nil || !dst.Addr().IsLoopback() {
		return fmt.Errorf("-to %q: give kdsrv's loopback address, e.g. 127.0.0.1:5005", to)
	}
	if n < 1 || n > 50000 || hold <= 0 || hold > 10*time.Minute {
		return fmt.Errorf("-n must be 1..50000 and -hold at most 10m")
	}
	if pr.from != "" {
		// One handshake before the flood derives the password key for
		// this server's salt, so the timed ones measure the server.
		if _, err := pr.once(dst.String()); err != nil {
			return fmt.Errorf("probe before the flood: %w", err)
		}
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	var (
		mu      sync.Mutex
		conns   []net.Conn
		failed  int
		busy    atomic.Int64
		closed  atomic.Int64
		readers sync.WaitGroup
	)
	// A partial Hello frame: the header promises more than is sent.
	partial := wire.AppendFrame(nil, wire.TypeHello, make([]byte, 64))[:6]
	start := time.Now()
	sem := make(chan struct{}, 64)
	var dialers sync.WaitGroup
	for range n {
		sem <- struct{}{}
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			defer func() { <-sem }()
			c, err := d.Dial("tcp", dst.String())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			if hello {
				_, _ = c.Write(partial)
			}
			conns = append(conns, c)
			readers.Add(1)
			go func() {
				defer readers.Done()
				// Whatever the server says first: an Error frame (Busy,
				// TooManyAttempts) or the end of the connection.
				f, err := wire.NewDecoder(c).Next()
				switch {
				case err == nil && f.Type == wire.TypeError:
					busy.Add(1)
				case err == io.EOF || err != nil:
					closed.Add(1)
				}
			}()
		}()
	}
	dialers.Wait()
	fmt.Printf("flood: holding %d connections from %s to %s (%d failed to connect) after %v\n",
		len(conns), from, to, failed, time.Since(start).Round(time.Millisecond))
	end := time.Now().Add(hold)
	if pr.from != "" {
		var worst time.Duration
		for i := range pr.n {
			took, err := pr.once(dst.String())
			if err != nil {
				fmt.Printf("flood: probe %d from %s failed: %v\n", i+1, pr.from, err)
				continue
			}
			worst = max(worst, took)
			fmt.Printf("flood: probe %d from %s authenticated and ran a command in %v\n", i+1, pr.from, took.Round(100*time.Microsecond))
		}
		fmt.Printf("flood: slowest probe %v\n", worst.Round(100*time.Microsecond))
	}
	time.Sleep(time.Until(end))
	refused, dropped := busy.Load(), closed.Load()
	for _, c := range conns {
		_ = c.Close()
	}
	readers.Wait()
	fmt.Printf("flood: done; while held, the server refused %d with an Error frame and closed %d without one (all refusal writers busy, or the handshake deadline passed)\n", refused, dropped)
	return nil
}

// prober times a legitimate client: connect, authenticate, GetInfo.
type prober struct {
	from     string
	n        int
	password string
	keys     *wire.KeyCache
}

var pr prober

func (p *prober) once(to string) (time.Duration, error) {
	src, err := netip.ParseAddr(p.from)
	if err != nil || !src.IsLoopback() {
		return 0, fmt.Errorf("-probe %q: give a loopback address such as 127.0.0.3", p.from)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	nc, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return 0, err
	}
	wc, err := wire.Client(ctx, nc, wire.Config{Password: p.password, Keys: p.keys, KeepAlive: -1, Software: "flood-probe"})
	if err != nil {
		return 0, err
	}
	defer wc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if err := wc.Send(wire.TypeControl, wire.EncodeControl(wire.Control{ID: 1, Command: wire.CmdGetInfo})); err != nil {
		return 0, err
	}
	for {
		f, err := wc.Recv()
		if err != nil {
			return 0, err
		}
		if f.Type == wire.TypeControl {
			r, err := wire.DecodeControl(f.Payload)
			if err != nil {
				return 0, err
			}
			if r.Status != wire.OK {
				return 0, fmt.Errorf("GetInfo: %v %s", r.Status, r.Body)
			}
			return time.Since(start), nil
		}
	}
}
