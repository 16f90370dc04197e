package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"kdsrv/internal/logx"
)

// DefaultAddr is the address a responder listens on: UDP port DefaultPort
// (50100) on all addresses, IPv4 and IPv6.
const DefaultAddr = ":50100"

// ResponderOptions tunes a Responder. The zero value gives the defaults.
type ResponderOptions struct {
	// Hostname is the host name reported in answers; default os.Hostname().
	Hostname string
	// Rate is how many queries per second one source (an IPv4 address or
	// an IPv6 /64) may make in the long run; default 2.
	Rate float64
	// Burst is how many queries one source may make at once; default 10.
	Burst int
	// GlobalRate bounds the answers per second to all sources together;
	// default 100 (burst 200).
	GlobalRate float64
	// RetryInterval is how often a standby responder tries to take the port
	// over from the one that holds it; default 2 s.
	RetryInterval time.Duration
	// Logger, if set, receives diagnostics (take-over, send errors). It
	// never receives secrets: the registry holds none.
	Logger *slog.Logger
}

func (o *ResponderOptions) setDefaults() {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	o.Hostname = sanitizeHost(o.Hostname)
	if o.Rate <= 0 {
		o.Rate = 2
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.GlobalRate <= 0 {
		o.GlobalRate = 100
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 2 * time.Second
	}
}

// sanitizeHost makes a host name fit an answer: printable ASCII, at most
// maxHostLen bytes.
func sanitizeHost(h string) string {
	b := []byte(h)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > maxHostLen {
		b = b[:maxHostLen]
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

// Responder answers -QR discovery queries for every live server in a
// Registry. Only one process per host can hold the UDP port; a Responder
// that finds it taken stands by and retries, so that when the active one
// exits another takes over. Each query re-reads the registry, so servers
// started later are reported too.
type Responder struct {
	reg  *Registry
	addr string
	opts ResponderOptions
	lim  *limiter

	mu     sync.Mutex
	conn   net.PacketConn // nil while standing by
	closed bool

	done chan struct{}
	wg   sync.WaitGroup
}

// StartResponder starts a responder for reg on the UDP address addr (empty
// means DefaultAddr). If the port is already in use (another server's
// responder holds it) the responder stands by and retries every
// opts.RetryInterval; any other listen error is returned. Close stops it.
func StartResponder(reg *Registry, addr string, opts ResponderOptions) (*Responder, error) {
	if reg == nil {
		reg = &Registry{}
	}
	if addr == "" {
		addr = DefaultAddr
	}
	opts.setDefaults()
	r := &Responder{
		reg: reg, addr: addr, opts: opts,
		lim:  newLimiter(opts.Rate, opts.Burst, opts.GlobalRate, int(2*opts.GlobalRate)),
		done: make(chan struct{}),
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil && !isAddrInUse(err) {
		return nil, fmt.Errorf("discovery: start responder on udp %s: %w", addr, err)
	}
	r.conn = conn // nil when the port is taken: stand by
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// Active reports whether this responder currently holds the port (as
// opposed to standing by).
func (r *Responder) Active() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil
}

// Addr returns the bound address while active, nil while standing by.
func (r *Responder) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil
	}
	return r.conn.LocalAddr()
}

// Close stops the responder and releases the port, so that a standby
// responder of another process can take it over. It waits for the
// responder's goroutine to finish.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	var err error
	if r.conn != nil {
		err = r.conn.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// log returns the responder's logger (one that discards when none is
// configured).
func (r *Responder) log() *slog.Logger { return logx.OrDiscard(r.opts.Logger) }

// run owns the socket: it serves while it holds the port and otherwise
// retries binding until Close.
func (r *Responder) run() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		conn, closed := r.conn, r.closed
		r.mu.Unlock()
		if closed {
			return
		}
		if conn != nil {
			r.serve(conn)
			r.mu.Lock()
			if r.conn == conn {
				r.conn = nil
			}
			r.mu.Unlock()
			_ = conn.Close()
			continue
		}
		t := time.NewTimer(r.opts.RetryInterval)
		select {
		case <-r.done:
			t.Stop()
			return
		case <-t.C:
		}
		c, err := net.ListenPacket("udp", r.addr)
		if err != nil {
			continue
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = c.Close()
			return
		}
		r.conn = c
		r.mu.Unlock()
		r.log().Info("took over the -QR responder", "udp", c.LocalAddr().String())
	}
}

// serve answers queries until conn is closed.
func (r *Responder) serve(conn net.PacketConn) {
	readDatagrams(conn, MaxDatagramSize+1, r.done, func(pkt []byte, from net.Addr) {
		if reply := r.answer(pkt, from, time.Now()); reply != nil {
			if _, err := conn.WriteTo(reply, from); err != nil {
				r.log().Debug("-QR answer failed", "to", fmt.Sprint(from), logx.Err(err))
			}
		}
	})
}

// readDatagrams hands each datagram read from conn (into a buffer of size
// bytes, reused) to handle, until conn is closed, or done is closed while a
// read fails. A failed read (an ICMP error reported on the socket) is
// tried again after a short pause, so the loop does not spin.
func readDatagrams(conn net.PacketConn, size int, done <-chan struct{}, handle func(pkt []byte, from net.Addr)) {
	buf := make([]byte, size)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		handle(buf[:n], from)
	}
}

// answer returns the reply to one datagram, or nil to send none.
func (r *Responder) answer(pkt []byte, from net.Addr, now time.Time) []byte {
	req, err := decodeRequest(pkt)
	if err != nil {
		return nil // not ours, or malformed: never answer
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return nil
	}
	src, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return nil
	}
	allowed, notify := r.lim.allow(src, now)
	if !allowed {
		if notify {
			return encodeBusy(req.Page, req.ID)
		}
		return nil
	}
	servers, err := r.reg.List()
	if err != nil {
		r.log().Warn("-QR: cannot read the registry", logx.Err(err))
	}
	var lines []string
	for _, s := range servers {
		lines = append(lines, s.Transports...)
	}
	page, more := pageLines(r.opts.Hostname, lines, int(req.Page))
	return encodeAnswer(r.opts.Hostname, req.Page, req.ID, page, more)
}
