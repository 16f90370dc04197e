package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/server"
)

// scaleSetupParallel bounds how many sessions connect at the same time. It
// stays within kdsrv's default cap on unauthenticated connections from one
// source address (server.DefaultMaxPreAuthPerSource): every session of the
// scale test comes from 127.0.0.1, and more concurrent handshakes would be
// turned away as Busy, as the cap intends.
const scaleSetupParallel = server.DefaultMaxPreAuthPerSource

// childServer is kdsrv running as a child process.
type childServer struct {
	cmd    *exec.Cmd
	addr   string
	waited chan error
}

var listeningRE = regexp.MustCompile(`listening on tcp:port=(\d+)`)

// startChild runs bin as kdsrv on a loopback port, allowing the simulated
// targets under dir, and waits until it listens.
func startChild(ctx context.Context, bin string, pre []string, dir string) (*childServer, error) {
	args := append(append([]string(nil), pre...), "-t", serverPorts, "-bind", "127.0.0.1", "-allow", filepath.Join(dir, "*.sock"))
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	c := &childServer{cmd: cmd, waited: make(chan error, 1)}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case port <- m[1]:
				default:
				}
			}
		}
		c.waited <- cmd.Wait() // after stdout reached EOF, as Wait requires
	}()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case p := <-port:
		c.addr = "127.0.0.1:" + p
		return c, nil
	case err := <-c.waited:
		return nil, fmt.Errorf("%s exited before listening: %v", bin, err)
	case <-timer.C:
		c.stop()
		return nil, fmt.Errorf("%s did not report a listening port within 15s", bin)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stop asks kdsrv to exit (SIGINT), and kills it after 10s.
func (c *childServer) stop() {
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = c.cmd.Process.Kill()
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-c.waited:
	case <-timer.C:
		_ = c.cmd.Process.Kill()
		<-c.waited
	}
}

// runScale opens cfg.Sessions sessions through one kdsrv, each to its own
// simulated target, has them all make small calls at once, and reports
// kdsrv's memory and the calls' latency. There is no WAN: the point is
// what one kdsrv costs per session.
func runScale(ctx context.Context, dir string, cfg Config) *Scale {
	n := cfg.Sessions
	res := &Scale{Sessions: n, Calls: cfg.ScaleCalls}
	var errs errorList
	defer func() {
		res.Errors = errs.n
		res.FirstError = errs.text()
	}()
	sdir := filepath.Join(dir, "scale")
	if err := os.Mkdir(sdir, 0o700); err != nil {
		errs.add(err)
		return res
	}
	sims := make([]*simTarget, 0, n)
	defer func() {
		for _, s := range sims {
			s.Close()
		}
	}()
	for i := range n {
		st, err := startSim(sdir, "s"+strconv.Itoa(i), 1<<20)
		if err != nil {
			errs.add(err)
			return res
		}
		sims = append(sims, st)
	}

	var addr string
	var child *childServer
	var baseline runtime.MemStats
	baseGoroutines := 0
	if cfg.KdsrvBinary != "" {
		var err error
		child, err = startChild(ctx, cfg.KdsrvBinary, cfg.KdsrvArgs, sdir)
		if err != nil {
			errs.add(err)
			return res
		}
		defer child.stop()
		addr = child.addr
		res.RSSSource = "peak VmRSS (VmHWM) of the kdsrv child process"
	} else {
		s, err := startServer(sdir)
		if err != nil {
			errs.add(err)
			return res
		}
		defer s.stop()
		addr = s.addr()
		runtime.GC()
		runtime.ReadMemStats(&baseline)
		baseGoroutines = runtime.NumGoroutine()
		res.RSSSource = "in-process: growth of Go heap and stacks of kdsrv, clients and targets together"
	}

	start := time.Now()
	lats := make([][]time.Duration, n)
	ready, called, closed := sync.WaitGroup{}, sync.WaitGroup{}, sync.WaitGroup{}
	ready.Add(n)
	called.Add(n)
	closed.Add(n)
	goCalls, goClose := make(chan struct{}), make(chan struct{})
	sem := make(chan struct{}, scaleSetupParallel)
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		errs.add(err)
		mu.Unlock()
	}
	for i := range n {
		go func() {
			defer closed.Done()
			sem <- struct{}{}
			sctx, cancel := context.WithTimeout(ctx, setupTimeout)
			sess, err := openClient(sctx, addr, sims[i].path, client.SessionOptions{})
			if err == nil {
				if _, err = sess.host.Attach(sctx); err != nil {
					err = fmt.Errorf("session %d: attaching: %w", i, err)
				}
			} else {
				err = fmt.Errorf("session %d: %w", i, err)
			}
			cancel()
			<-sem
			ready.Done()
			if err != nil {
				fail(err)
				called.Done()
				if sess != nil {
					sess.close()
				}
				return
			}
			<-goCalls
			lat, _, err := smallCalls(ctx, sess.host, cfg.ScaleCalls, cfg.Budget)
			lats[i] = lat
			if err != nil {
				fail(fmt.Errorf("session %d: %w", i, err))
			}
			called.Done()
			<-goClose
			sem <- struct{}{}
			sess.close()
			<-sem
		}()
	}
	ready.Wait()
	res.SetupSeconds = time.Since(start).Seconds()
	close(goCalls)
	called.Wait()
	// Every session is still open: this is the peak.
	if child != nil {
		peak, threads, err := procStatus(child.cmd.Process.Pid)
		if err != nil {
			errs.add(err)
		}
		res.RSSMiB = float64(peak) / 1024
		res.KdsrvThreads = threads
	} else {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		grown := int64(m.HeapInuse+m.StackInuse) - int64(baseline.HeapInuse+baseline.StackInuse)
		res.RSSMiB = float64(max(grown, 0)) / (1 << 20)
		res.Goroutines = runtime.NumGoroutine() - baseGoroutines
	}
	close(goClose)
	closed.Wait()
	res.Seconds = time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.P50us, res.P99us = micros(percentile(all, 0.5)), micros(percentile(all, 0.99))
	return res
}
