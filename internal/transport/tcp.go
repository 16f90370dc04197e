package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"kdsrv/internal/spec"
)

// tcpNetwork picks the Go network name for ipversion.
func tcpNetwork(ipversion int) string {
	switch ipversion {
	case 6:
		return "tcp6"
	case 4:
		return "tcp4"
	}
	return "tcp"
}

type tcpListener struct {
	net.Listener
	display string
}

func (l *tcpListener) Display() string { return l.display }

// ListenTCPRange binds the first free port of r on host (all interfaces when
// host is empty). The error for a fully used range names the range.
func ListenTCPRange(ctx context.Context, host string, r spec.PortRange, ipversion int) (net.Listener, int, error) {
	var lc net.ListenConfig
	network := tcpNetwork(ipversion)
	var lastErr error
	for p := int(r.Lo); p <= int(r.Hi); p++ {
		ln, err := lc.Listen(ctx, network, net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, p, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EACCES) {
			break
		}
	}
	where := fmt.Sprintf("port %d", r.Lo)
	if r.IsRange() {
		where = fmt.Sprintf("any port of %d:%d", r.Lo, r.Hi)
	}
	hint := "choose another port or a range (port=A:B)"
	if errors.Is(lastErr, syscall.EACCES) {
		hint = "ports below 1024 need root; choose a port above 1023"
	}
	return nil, 0, fmt.Errorf("cannot listen on %s (%s): %w; %s", where, network, lastErr, hint)
}

// DisplayPort is the port as discovery shows it: "53:60" for a range that
// found 53 free, "5005" for a single port.
func DisplayPort(used int, r spec.PortRange) string {
	if r.IsRange() {
		return fmt.Sprintf("%d:%d", used, r.Hi)
	}
	return strconv.Itoa(used)
}

func listenTCP(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	if t.Reverse() {
		return listenClicon(ctx, t, o)
	}
	ln, used, err := ListenTCPRange(ctx, o.BindHost, t.Port, t.IPVersion)
	if err != nil {
		return nil, fmt.Errorf("tcp transport: %w", err)
	}
	d := "tcp:port=" + DisplayPort(used, t.Port)
	if t.IPVersion == 6 {
		d += ",ipversion=6"
	}
	return &tcpListener{Listener: ln, display: d}, nil
}

func dialTCP(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	if t.Reverse() {
		return dialClicon(ctx, t)
	}
	return DialTCPHost(ctx, t.Server, int(t.Port.Lo), t.IPVersion)
}

// DialTCPHost connects to host:port with a 10 s default time-out and TCP
// keep-alives; errors say which server was unreachable and what to check.
func DialTCPHost(ctx context.Context, host string, port, ipversion int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	c, err := d.DialContext(ctx, tcpNetwork(ipversion), addr)
	if err != nil {
		hint := "check that kdsrv is running there with -t tcp:port=" + strconv.Itoa(port) + " and that no firewall blocks the port"
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			hint = "nothing listens on that port: start kdsrv -t tcp:port=" + strconv.Itoa(port) + " on " + host + " (or check the port number)"
		case errors.As(err, &dnsErr):
			hint = "the name " + strconv.Quote(host) + " did not resolve to an address: check its spelling, or give the server's IP address"
			if dnsErr.IsTimeout || dnsErr.IsTemporary {
				hint = "the name " + strconv.Quote(host) + " could not be looked up (the DNS server did not answer): try again, or give the server's IP address"
			}
		}
		return nil, fmt.Errorf("cannot reach kdsrv at tcp %s: %w; %s", addr, err, hint)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}
