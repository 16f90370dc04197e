package targetlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/serial"
	"kdsrv/internal/spec"
)

// Stream is an open KDCOM target connection: a byte stream carrying raw
// KDCOM. One reader and one writer may use it concurrently; Close unblocks
// both.
type Stream interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	// String describes the stream for logs, e.g. "serial /dev/ttyS0 @115200",
	// "pipe /run/vm/kd.sock" or "ipport 127.0.0.1:5555".
	String() string
}

// Reconnecter is implemented by streams that redial after the far end went
// away (pipes with reconnect).
type Reconnecter interface {
	// Reconnects returns how many times the link has been re-established
	// since Open.
	Reconnects() int
	// Reconnected returns a channel that is closed when the link is next
	// re-established. Whatever was on the far end may have changed (a
	// VM that rebooted): the KD layer above must synchronise again.
	Reconnected() <-chan struct{}
}

// DefaultDialTimeout bounds a TCP connection attempt of an ipport link when
// the context given to Open has no earlier deadline.
const DefaultDialTimeout = 10 * time.Second

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// KD tunes the KDCOM engine of com: targets (zero fields take kd's
	// defaults).
	KD kd.Config
	// KDNETBindHost is the local address KDNET targets are served on;
	// empty means every interface, as a Windows debugger host does (the
	// target is configured with one of this machine's addresses).
	KDNETBindHost string
	// Logger, if set, receives the events of KDNET links (sessions,
	// datagrams failing authentication); lines never hold key material.
	Logger *slog.Logger
}

// Open opens the target described by t and returns the host (debugger) end
// of its KD link: a KDCOM engine (*kd.Link) over the byte stream of a com:
// target (see OpenStream), or a KDNET engine listening on the UDP port of
// a net: target. t has been filled from the _NT_DEBUG_* variables; the
// allow-list is checked first (nil means DefaultAllow()), and a refusal is
// a *NotAllowedError naming the -allow pattern that would admit the
// target. ctx bounds the opening only; the endpoint outlives it and the
// caller must Close it.
func Open(ctx context.Context, t *spec.Target, allow *AllowList, opts Options) (kd.Endpoint, error) {
	if t != nil && t.Kind == spec.TargetNet {
		return openNet(ctx, t, allow, opts)
	}
	s, err := OpenStream(ctx, t, allow)
	if err != nil {
		return nil, err
	}
	return kd.NewHostLink(s, opts.KD), nil
}

// OpenStream opens the byte stream of the com: target described by t,
// which has been filled from the _NT_DEBUG_* variables and validated by
// t.Complete(). It checks the allow-list first (nil means DefaultAllow());
// a refusal is a *NotAllowedError whose message names the -allow pattern
// that would admit the target. ctx bounds the opening only: a pipe with
// reconnect waits for its socket until ctx is done, an ipport link dials
// until ctx is done or DefaultDialTimeout passes. The stream outlives ctx.
// A net: (KDNET) target has no byte stream: open it with Open.
func OpenStream(ctx context.Context, t *spec.Target, allow *AllowList) (Stream, error) {
	if t == nil {
		return nil, errors.New("targetlink: no target given")
	}
	if err := t.Complete(); err != nil {
		return nil, fmt.Errorf("targetlink: %w", err)
	}
	if allow == nil {
		allow = DefaultAllow()
	}
	pl, err := allow.admit(ctx, t, true)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, targetError(pl.desc, "not opened: "+err.Error(), "")
	}
	switch pl.kind {
	case spec.TargetSerial:
		return openSerial(pl, t.Baud)
	case spec.TargetPipe:
		return openPipe(ctx, pl, t, allow)
	case spec.TargetIPPort:
		return openIPPort(ctx, pl)
	case spec.TargetNet:
		return nil, targetError(pl.desc, "a KDNET target carries datagrams, not a byte stream", "open it with targetlink.Open")
	}
	return nil, targetError(pl.desc, "unknown kind of target link", "")
}

// serialLink is a serial device.
type serialLink struct {
	*serial.Port
	desc string
}

func (l *serialLink) String() string { return l.desc }

func openSerial(pl *place, baud int) (Stream, error) {
	p, err := openSerialPinned(pl.real, baud)
	if err != nil {
		if errors.Is(err, errPathChanged) {
			return nil, fmt.Errorf("target %s: refused: %w; try again; if this repeats, someone is replacing files in the device's directory", quote(pl.desc), errPathChanged)
		}
		hint := ""
		var se *serial.Error
		if errors.As(err, &se) {
			// Name the device as the client gave it, not the
			// descriptor or resolved path it was opened by.
			se.Path = pl.given
		} else {
			err = sanitize(err)
		}
		if errors.Is(err, fs.ErrPermission) && !(se != nil && se.Hint != "") {
			hint = "kdsrv's user may not open the device; on Linux add it to the dialout group"
		}
		if st, serr := os.Stat(pl.real); serr == nil && st.Mode()&fs.ModeSocket != 0 {
			// A VM's serial port exposed as a socket, named as a device.
			hint = "it is a unix socket, not a serial device: name it as a VM pipe, trans=@{com:pipe,port=" + pl.given + "}"
		}
		return nil, wrapTarget(pl.desc, "cannot open the serial device", err, hint)
	}
	// serial.Open already drops pending input; flush again so that the
	// contract holds whatever the driver buffered while configuring.
	if err := p.Flush(); err != nil {
		_ = p.Close()
		return nil, wrapTarget(pl.desc, "cannot discard stale input", err, "")
	}
	return &serialLink{Port: p, desc: pl.desc}, nil
}

// wrapTarget wraps err with the target and what failed.
func wrapTarget(desc, what string, err error, hint string) error {
	if hint != "" {
		return fmt.Errorf("target %s: %s: %w; %s", quote(desc), what, err, hint)
	}
	return fmt.Errorf("target %s: %s: %w", quote(desc), what, err)
}

// openIPPort connects to the first of pl.addrs that accepts: only addresses
// the allow-list admitted, from its one resolution of the host name, are
// dialled (no second lookup that DNS could answer differently).
func openIPPort(ctx context.Context, pl *place) (Stream, error) {
	if len(pl.addrs) == 0 {
		return nil, targetError(pl.desc, "no address to connect to", "")
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	var d net.Dialer
	var c net.Conn
	var err error
	for _, ip := range pl.addrs {
		c, err = d.DialContext(dctx, "tcp", netip.AddrPortFrom(ip, uint16(pl.port)).String())
		if err == nil || dctx.Err() != nil {
			break
		}
	}
	if err != nil {
		err = sanitize(err)
		switch {
		case isRefused(err):
			return nil, wrapTarget(pl.desc, "nothing accepts connections there", err,
				"check that the VM is running with its serial port on this TCP port (QEMU: -serial tcp::"+strconv.Itoa(pl.port)+",server,nowait)")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, wrapTarget(pl.desc, "no answer", err, "check the address, the port and any firewall between kdsrv and the VM")
		}
		return nil, wrapTarget(pl.desc, "cannot connect", err, "check the address and the port")
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			_ = c.Close()
			return nil, wrapTarget(pl.desc, "cannot set TCP_NODELAY", err, "")
		}
	}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("ipport links do not redial") }
	return newStreamLink(pl.desc, c, dial, false), nil
}

// isTimeout reports whether err is a timeout of any origin (os, net, winio).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
