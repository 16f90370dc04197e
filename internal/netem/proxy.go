package netem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the proxy's connection to its target.
const dialTimeout = 10 * time.Second

// Proxy is a TCP listener that forwards each accepted connection to a
// target through the emulator, in both directions. Connection i (counting
// from 0) uses Profile.Seed+i so runs are repeatable.
type Proxy struct {
	ln     net.Listener
	target string
	p      Profile
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	next    int64
	live    map[*Conn]struct{}
	done    ConnStats // of finished connections
	lastErr error

	closeOnce sync.Once
	closeErr  error
}

// NewProxy listens on listenAddr (e.g. "127.0.0.1:0"; meant for loopback)
// and forwards each accepted connection to target through the emulator.
// Close stops everything.
func NewProxy(listenAddr, target string, p Profile) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("netem: proxy target %q is not host:port: %w", target, err)
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("netem: proxy cannot listen on %q: %w", listenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	px := &Proxy{ln: ln, target: target, p: p, ctx: ctx, cancel: cancel, live: map[*Conn]struct{}{}}
	px.wg.Add(1)
	go px.acceptLoop()
	return px, nil
}

// Addr returns the address the proxy listens on, as host:port.
func (px *Proxy) Addr() string { return px.ln.Addr().String() }

// Stats sums the traffic of all connections so far: Sent is the client →
// target direction, Received the target → client direction.
func (px *Proxy) Stats() ConnStats {
	px.mu.Lock()
	defer px.mu.Unlock()
	s := px.done
	for c := range px.live {
		cs := c.Stats()
		s.Sent, s.Received = s.Sent.add(cs.Sent), s.Received.add(cs.Received)
	}
	return s
}

// Err returns the most recent error the proxy met while serving (a failed
// dial of the target, a failed accept), or nil.
func (px *Proxy) Err() error {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.lastErr
}

// Close stops listening, drops every forwarded connection (pending data is
// discarded) and waits for all of the proxy's goroutines.
func (px *Proxy) Close() error {
	px.closeOnce.Do(func() {
		px.cancel()
		px.closeErr = px.ln.Close()
		px.wg.Wait()
	})
	return px.closeErr
}

func (px *Proxy) setErr(err error) {
	px.mu.Lock()
	px.lastErr = err
	px.mu.Unlock()
}

func (px *Proxy) acceptLoop() {
	defer px.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := px.ln.Accept()
		if err != nil {
			if px.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			px.setErr(fmt.Errorf("netem: proxy accept on %s: %w", px.Addr(), err))
			t := time.NewTimer(backoff)
			select {
			case <-px.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		px.mu.Lock()
		idx := px.next
		px.next++
		px.mu.Unlock()
		px.wg.Add(1)
		go px.serve(c, idx)
	}
}

func (px *Proxy) serve(client net.Conn, idx int64) {
	defer px.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	t, err := d.DialContext(px.ctx, "tcp", px.target)
	if err != nil {
		// The error first: whoever sees the client's connection end and
		// asks Err why gets the answer.
		if px.ctx.Err() == nil {
			px.setErr(fmt.Errorf("netem: proxy %s cannot reach target %s: %w", px.Addr(), px.target, err))
		}
		client.Close()
		return
	}
	p := px.p
	p.Seed += idx
	w := Wrap(t, p).(*Conn)
	px.mu.Lock()
	px.live[w] = struct{}{}
	px.mu.Unlock()

	if err := Relay(px.ctx, client, w); err != nil && px.ctx.Err() == nil {
		px.setErr(fmt.Errorf("netem: proxy %s ↔ %s: %w", client.RemoteAddr(), px.target, err))
	}
	select {
	case <-w.pumpsDone:
	case <-px.ctx.Done():
		w.abort()
		<-w.pumpsDone
	}
	px.mu.Lock()
	delete(px.live, w)
	cs := w.Stats()
	px.done.Sent, px.done.Received = px.done.Sent.add(cs.Sent), px.done.Received.add(cs.Received)
	px.mu.Unlock()
}
