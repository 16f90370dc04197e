package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"kdsrv/internal/dbgport"
	"kdsrv/internal/logx"
	"kdsrv/internal/serial"
)

// Debug-port networks understood by ParsePort, Listen and Connect.
const (
	NetworkUnix = "unix" // AF_UNIX stream socket (radare2 winkd, QEMU-style serial pipes)
	NetworkTCP  = "tcp"  // KDCOM over TCP (WinDbg com:ipport, QEMU -serial tcp)
	NetworkPTY  = "pty"  // a pseudo-terminal pair; ServePTY only
)

// ErrPTYUnsupported is returned by ServePTY where the system has no
// pseudo-terminals.
var ErrPTYUnsupported = errors.New("pty endpoints need a Unix system (Linux, macOS, BSD); use a unix:PATH or tcp:HOST:PORT endpoint instead")

// PortOptions tunes the debug port that makes a machine reachable (a
// socket, a pty, a serial device or KDNET: the machine's side of the
// line a debugger attaches to). The zero value is ready to use.
type PortOptions struct {
	// Ready is called once the port is usable: with "unix:PATH" or
	// "tcp:HOST:PORT" (the bound address, so port 0 shows the real port)
	// for Listen, with the address being dialled for Connect, and with the
	// slave device path (such as /dev/pts/5) for ServePTY. Optional.
	Ready func(addr string)
	// Logger receives one line per connection event: a debugger attached,
	// was replaced, went away (with the link counters of that connection),
	// and dial failures. Optional; nil keeps the port quiet.
	Logger *slog.Logger
	// RedialMin and RedialMax bound Connect's back-off between attempts
	// (defaults 100ms and 5s). The delay doubles after every failed or
	// short-lived connection.
	RedialMin, RedialMax time.Duration
	// DialTimeout bounds one connection attempt of Connect (default 5s).
	DialTimeout time.Duration
	// PollInterval is how often ServePTY looks for a debugger on the
	// slave side while none has it open (default 100ms).
	PollInterval time.Duration
}

func (o *PortOptions) setDefaults() {
	if o.RedialMin <= 0 {
		o.RedialMin = 100 * time.Millisecond
	}
	if o.RedialMax <= 0 {
		o.RedialMax = 5 * time.Second
	}
	if o.RedialMax < o.RedialMin {
		o.RedialMax = o.RedialMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
}

func (o *PortOptions) ready(addr string) {
	if o.Ready != nil {
		o.Ready(addr)
	}
}

func (o *PortOptions) log() *slog.Logger { return logx.OrDiscard(o.Logger) }

// ParsePort splits a debug port written as "unix:PATH", "tcp:HOST:PORT",
// "pty" or "serial:DEVICE[,baud=N]" into a network (NetworkUnix,
// NetworkTCP, NetworkPTY, NetworkSerial) and an address (for serial,
// "DEVICE[,baud=N]" as given; ParseSerial splits it). The scheme is case-insensitive. The TCP port must be a number
// from 0 to 65535 (0 picks a free port when listening).
func ParsePort(s string) (network, address string, err error) {
	scheme, rest, hasColon := strings.Cut(s, ":")
	switch strings.ToLower(scheme) {
	case NetworkPTY:
		if hasColon {
			return "", "", fmt.Errorf("endpoint %q: pty takes no address (the device is allocated and reported at start)", s)
		}
		return NetworkPTY, "", nil
	case NetworkUnix:
		if rest == "" {
			return "", "", fmt.Errorf("endpoint %q: unix needs a socket path, as in unix:/tmp/kd.sock", s)
		}
		return NetworkUnix, rest, nil
	case NetworkTCP:
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("endpoint %q: tcp needs HOST:PORT, as in tcp:127.0.0.1:5555 or tcp:[::1]:5555", s)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" {
			return "", "", fmt.Errorf("endpoint %q: port %q is not a number from 0 to 65535", s, port)
		} else if n == 0 && port != "0" {
			return "", "", fmt.Errorf("endpoint %q: port %q is not a number from 0 to 65535", s, port)
		}
		return NetworkTCP, net.JoinHostPort(host, port), nil
	case NetworkSerial:
		if _, _, err := ParseSerial(rest); err != nil {
			return "", "", err
		}
		return NetworkSerial, rest, nil
	}
	return "", "", fmt.Errorf("endpoint %q: unknown kind %q; use unix:PATH, tcp:HOST:PORT, pty or serial:DEVICE[,baud=N]", s, scheme)
}

// checkNetwork validates a stream network for Listen and Connect.
func checkNetwork(op, network, address string) error {
	switch network {
	case NetworkTCP, "tcp4", "tcp6":
		return nil
	case NetworkUnix:
		if address == "" {
			return fmt.Errorf("%s unix: empty socket path", op)
		}
		if len(address) > maxUnixPath {
			return fmt.Errorf("%s unix:%s: the path is %d bytes, longer than the %d this system allows for a socket; choose a shorter path (for example under /tmp)",
				op, address, len(address), maxUnixPath)
		}
		return nil
	case NetworkPTY:
		return fmt.Errorf("%s: a pty is not a socket; use ServePTY", op)
	case NetworkSerial:
		return fmt.Errorf("%s: a serial device is not a socket; use ServeSerial", op)
	}
	return fmt.Errorf("%s: unsupported network %q; use unix or tcp", op, network)
}

// Listen makes m reachable at a listening socket ("unix" path or "tcp"
// host:port) and serves debugger connections one after another until ctx
// ends. Like a VM's serial port there is one debugger at a time: a new
// connection replaces the current one (the old connection is closed, then
// the new one is served), so a debugger that restarts or reconnects is
// never locked out. The target's state carries over between connections.
//
// A unix socket file left behind by an earlier run is replaced, but not
// one another live process serves, nor any other kind of file (package
// dbgport); the socket file is removed when Listen returns. Listen
// returns nil when ctx ends, and an error when the port cannot be set
// up or stops accepting.
func Listen(ctx context.Context, m *Machine, network, address string, opts PortOptions) error {
	opts.setDefaults()
	defer m.hold()() // the machine runs between connections too
	if err := checkNetwork("listen", network, address); err != nil {
		return err
	}
	ln, err := dbgport.Listen(ctx, network, address)
	if err != nil {
		return err
	}
	name := network + ":" + ln.Addr().String()
	opts.ready(name)
	return dbgport.Serve(ctx, ln, name, opts.log(), func(ctx context.Context, c net.Conn, _ string) {
		serveOne(ctx, m, c, peerName(network, c), &opts)
	})
}

// peerName names the far end of an accepted connection for log lines:
// its address, or for a unix socket the peer's credentials and the
// socket's path (never "@").
func peerName(network string, c net.Conn) string {
	if network == NetworkUnix {
		return logx.Peer(c)
	}
	return network + ":" + logx.Peer(c)
}

// serveOne serves one debugger connection and logs its life.
func serveOne(ctx context.Context, m *Machine, conn io.ReadWriteCloser, peer string, opts *PortOptions) {
	before := m.Stats()
	start := time.Now()
	opts.log().Info("debugger connected", "peer", peer)
	err := m.Serve(ctx, conn)
	conn.Close()
	after := m.Stats()
	if err != nil {
		opts.log().Info("debugger connection: serving stopped", "peer", peer, logx.Err(err))
	}
	opts.log().Info("debugger disconnected", "peer", peer, logx.Round("after", time.Since(start)), "stats", statsDelta(before, after))
}

// statsDelta describes what happened on one connection.
func statsDelta(a, b Stats) string {
	l := b.Link.Sub(a.Link)
	return fmt.Sprintf("%d requests, %d state changes, %d prints; link: %d packets sent, %d received, %d retransmits, resets %d sent/%d received, %d break-ins, %d corrupt, %d duplicates, %d noise bytes",
		b.Requests-a.Requests, b.StateChanges-a.StateChanges, b.Prints-a.Prints,
		l.PacketsSent, l.PacketsReceived, l.Retransmits, l.ResetsSent, l.ResetsReceived,
		l.BreakInsRecv, l.Corrupt, l.Duplicates, l.NoiseBytes)
}

// Connect makes m reach out to a debugger that listens ("tcp" host:port or
// "unix" path), like a VM serial port in client mode, and serves each
// connection it makes. When a dial fails or the connection closes it dials
// again after a back-off that doubles from RedialMin to RedialMax (reset
// after a connection that lasted longer than RedialMax). Connect returns
// nil when ctx ends; it returns an error only for an unusable network or
// address.
func Connect(ctx context.Context, m *Machine, network, address string, opts PortOptions) error {
	opts.setDefaults()
	defer m.hold()() // the machine runs between connections too
	if err := checkNetwork("connect", network, address); err != nil {
		return err
	}
	if network != NetworkUnix {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("connect %s:%s: %w", network, address, err)
		}
		if port == "0" {
			return fmt.Errorf("connect %s:%s: port 0 cannot be dialled; give the port the debugger listens on", network, address)
		}
	}
	name := network + ":" + address
	opts.ready(name)
	delay := opts.RedialMin
	for attempt := 1; ; attempt++ {
		d := net.Dialer{Timeout: opts.DialTimeout}
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			opts.log().Info("connect failed; retrying", "endpoint", name, "attempt", attempt, logx.Err(err), "retry_in", delay)
		} else {
			attempt = 0
			start := time.Now()
			serveOne(ctx, m, c, name, &opts)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(start) > opts.RedialMax {
				delay = opts.RedialMin
			}
			opts.log().Info("connection closed; dialling again", "endpoint", name, "retry_in", delay)
		}
		if !sleepCtx(ctx, delay) {
			return nil
		}
		delay = min(2*delay, opts.RedialMax)
	}
}

// ServePTY makes m reachable on a new pseudo-terminal, the way a VM
// exposes a serial port as a pty (dbgport.PTY): the slave device (reported
// through opts.Ready, for example /dev/pts/5) is in raw mode (8-bit, no
// echo, no CR/LF translation, no signals, no line editing), and the
// machine serves the master side. A debugger opens the slave; when it
// closes it, output queued for it is flushed, and the machine is served
// again as soon as the slave is reopened; it keeps running meanwhile.
// opts.PollInterval is how often it looks for a debugger. ServePTY
// returns nil when ctx ends, and ErrPTYUnsupported where the system has
// no pseudo-terminals.
func ServePTY(ctx context.Context, m *Machine, opts PortOptions) error {
	opts.setDefaults()
	defer m.hold()() // the machine runs while no debugger has the pty open
	ln, err := dbgport.ListenPTY(opts.PollInterval)
	if errors.Is(err, serial.ErrNoPTY) {
		err = ErrPTYUnsupported
	}
	if err != nil {
		return err
	}
	name := "pty:" + ln.Path()
	opts.ready(ln.Path())
	return dbgport.Serve(ctx, ln, name, opts.log(), func(ctx context.Context, c net.Conn, _ string) {
		serveOne(ctx, m, c, name, &opts)
	})
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
