package discovery

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNoResponder means no discovery responder answered: the host is
	// unreachable, runs no discoverable server, or a firewall drops the
	// query. Errors returned by Query wrap it.
	ErrNoResponder = errors.New("no kdsrv discovery responder answered")
	// ErrRateLimited means the host's responder refused the query because
	// this address asked too often.
	ErrRateLimited = errors.New("the host's discovery responder is rate-limiting this address")
)

// QueryOptions tunes Query. The zero value gives the defaults.
type QueryOptions struct {
	// Port is the responder's UDP port when host names none; default
	// DefaultPort.
	Port int
	// Timeout bounds the whole query; default 2 s.
	Timeout time.Duration
	// Attempts is how many times each request datagram is sent within the
	// time-out when no answer comes; default 3.
	Attempts int
}

// Result is the answer of one host.
type Result struct {
	// Host is the host name the responder reported.
	Host string
	// Addr is the address that was queried (host:port).
	Addr string
	// Lines are the transports of all discoverable servers on the host,
	// in display form (see Line).
	Lines []string
	// Truncated is set when the host had more servers than MaxPages
	// answers can carry; Lines holds the first ones.
	Truncated bool
}

// resolveTarget turns a user-given host ("\\Host", "Host", "Host:port",
// "[::1]", "" for the local machine) into host:port.
func resolveTarget(host string, port int) string {
	h := strings.TrimSpace(host)
	h = strings.TrimPrefix(h, `\\`)
	switch strings.ToLower(h) {
	case "", ".", "localhost":
		h = "127.0.0.1"
	}
	if hh, pp, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(hh, pp)
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return net.JoinHostPort(h, strconv.Itoa(port))
}

// Query asks host for its discoverable KD connection servers. host may be
// written "\\Host" or "Host", may carry a ":port", and "", "." or
// "localhost" mean the local machine (over loopback). The whole query is
// bounded by opts.Timeout (default 2 s) and ctx; the request is re-sent up
// to opts.Attempts times within it. When nothing answers the error wraps
// ErrNoResponder; when the host refuses because of its rate limit, it wraps
// ErrRateLimited.
func Query(ctx context.Context, host string, opts QueryOptions) (*Result, error) {
	if opts.Port <= 0 {
		opts.Port = DefaultPort
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	target := resolveTarget(host, opts.Port)
	shown := strings.TrimPrefix(strings.TrimSpace(host), `\\`)
	if shown == "" || shown == "." {
		shown = "localhost"
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	host, port, _ := net.SplitHostPort(target)
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: query %s: cannot resolve %q: %w (check the host name)", shown, host, err)
	}
	ip := ips[0].Unmap()
	for _, a := range ips { // prefer IPv4, which every responder listens on
		if a.Unmap().Is4() {
			ip = a.Unmap()
			break
		}
	}
	pn, err := strconv.Atoi(port)
	if err != nil || pn <= 0 || pn > 65535 {
		return nil, fmt.Errorf("discovery: query %s: invalid port %q", shown, port)
	}
	to := &net.UDPAddr{IP: ip.AsSlice(), Port: pn, Zone: ip.Zone()}
	target = to.String()
	network := "udp4"
	if !ip.Is4() {
		network = "udp6"
	}
	// An unconnected socket: a multi-homed host may answer from another of
	// its addresses. Answers are matched by their random 64-bit query id.
	conn, err := net.ListenPacket(network, ":0")
	if err != nil {
		return nil, fmt.Errorf("discovery: query %s: open a UDP socket: %w", shown, err)
	}
	defer conn.Close()
	// Unblock reads as soon as ctx ends (cancellation or time-out).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	res := &Result{Addr: target}
	for page := 0; page < MaxPages; page++ {
		resp, err := exchange(ctx, conn, to, uint8(page), opts)
		if err != nil {
			if errors.Is(err, ErrRateLimited) {
				return nil, fmt.Errorf("discovery: query %s (%s): %w; wait a few seconds and try again", shown, target, err)
			}
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("discovery: query %s (%s): %w", shown, target, ctx.Err())
			}
			detail := ""
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				detail = " (" + err.Error() + ")"
			}
			return nil, fmt.Errorf("discovery: query %s (%s): %w within %v%s; check that an elevated, non-hidden kdsrv runs there and that its firewall allows UDP port %d",
				shown, target, ErrNoResponder, opts.Timeout, detail, pn)
		}
		if page == 0 {
			res.Host = resp.Host
		}
		res.Lines = append(res.Lines, resp.Lines...)
		if !resp.More {
			return res, nil
		}
	}
	res.Truncated = true
	return res, nil
}

// exchange sends the request for one page up to opts.Attempts times and
// returns the first matching answer.
func exchange(ctx context.Context, conn net.PacketConn, to net.Addr, page uint8, opts QueryOptions) (response, error) {
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return response{}, err
	}
	id := binary.BigEndian.Uint64(idb[:])
	req := encodeRequest(request{Page: page, ID: id})
	interval := opts.Timeout / time.Duration(opts.Attempts)
	buf := make([]byte, MaxDatagramSize+1)
	var lastErr error = os.ErrDeadlineExceeded
	for attempt := 0; attempt < opts.Attempts && ctx.Err() == nil; attempt++ {
		until := time.Now().Add(interval)
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			until = dl
		}
		if _, err := conn.WriteTo(req, to); err != nil {
			lastErr = err
			sleepUntil(ctx, until)
			continue
		}
		_ = conn.SetReadDeadline(until)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					lastErr = err
					sleepUntil(ctx, until)
				}
				break
			}
			resp, err := decodeResponse(buf[:n])
			if err != nil || resp.ID != id || resp.Page != page {
				continue // stray or malformed datagram: keep waiting
			}
			if resp.Type == typeBusy {
				return response{}, ErrRateLimited
			}
			return resp, nil
		}
	}
	return response{}, lastErr
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}
