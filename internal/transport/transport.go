// Package transport opens the byte streams between kdsrv and its smart
// clients: listeners on the server side and dialers on the client side, for
// every transport of the command-line grammar (tcp with port ranges and
// IPv6, ssl, npipe, spipe and com; Listen and Dial pick by protocol).
//
// Each server-side Listener reports a display form, the transport as a
// client would type it back (e.g. "tcp:port=53:60" when port=51:60 found
// 53 free), which kdsrv prints when it is ready and -QR discovery shows.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"kdsrv/internal/spec"
)

// Listener is a server-side transport endpoint.
type Listener interface {
	// Accept waits for the next client connection.
	Accept() (net.Conn, error)
	// Close stops accepting and unblocks Accept.
	Close() error
	// Addr is the bound address.
	Addr() net.Addr
	// Display is the transport as clients spell it, with the port or pipe
	// actually in use, e.g. "tcp:port=53:60" or "npipe:pipe=kd_1234".
	Display() string
}

// Options are server-side settings that are not part of the grammar.
type Options struct {
	// BindHost restricts TCP/SSL listeners to one address (our extension;
	// empty = every interface, like the original).
	BindHost string
	// PID and TID expand %d/%x codes in pipe names.
	PID, TID int
	// CliconRetry keeps a reverse (clicon) server dialing its client after
	// a refused or broken connection, instead of giving up (our extension;
	// the original exits).
	CliconRetry bool
	// CliconWindow is how long a reverse (clicon) server keeps dialing a
	// client that refuses the first connection before it gives up, when
	// CliconRetry is off (default DefaultCliconWindow).
	CliconWindow time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake of each ssl/spipe client
	// connection, so a client that does not speak TLS (or says nothing)
	// cannot hold a connection open (default DefaultTLSHandshakeTimeout).
	TLSHandshakeTimeout time.Duration
	// COM shares serial ports among the com listeners of one server, so
	// that several -t com: on one port use one multiplexer. Nil: each com
	// listener opens its port for itself.
	COM *COMPorts
}

// ListenFunc opens a listener for one parsed server transport (the
// transport below TLS in ListenTLS).
type ListenFunc func(ctx context.Context, t *spec.Transport, o Options) (Listener, error)

// DialFunc opens a client connection for one parsed client transport (the
// transport below TLS in DialTLS).
type DialFunc func(ctx context.Context, t *spec.Transport) (net.Conn, error)

// ErrUnsupported is returned for a transport this build cannot serve.
var ErrUnsupported = errors.New("transport not supported by this build")

// Listen opens the server side of t.
func Listen(ctx context.Context, t *spec.Transport, o Options) (Listener, error) {
	switch t.Proto {
	case spec.TCP:
		return listenTCP(ctx, t, o)
	case spec.SSL, spec.SPipe:
		return ListenTLS(ctx, t, o, nil)
	case spec.NPipe:
		return listenNPipe(ctx, t, o)
	case spec.COM:
		return listenCOM(ctx, t, o)
	}
	return nil, fmt.Errorf("%s: %w", t, ErrUnsupported)
}

// Dialer opens the client side of transports. The zero value is ready to
// use.
type Dialer struct {
	// COM shares serial ports among the com dials of this Dialer, so that
	// connections on several channels of one port use one multiplexer.
	// Nil: each com dial opens its port for itself.
	COM *COMPorts
}

// Dial opens the client side of t.
func (d *Dialer) Dial(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	switch t.Proto {
	case spec.TCP:
		return dialTCP(ctx, t)
	case spec.SSL, spec.SPipe:
		return DialTLS(ctx, t, nil)
	case spec.NPipe:
		return dialNPipe(ctx, t)
	case spec.COM:
		return dialCOM(ctx, t, d.COM)
	}
	return nil, fmt.Errorf("%s: %w", t, ErrUnsupported)
}

// Dial opens the client side of t with a zero Dialer.
func Dial(ctx context.Context, t *spec.Transport) (net.Conn, error) {
	var d Dialer
	return d.Dial(ctx, t)
}

// Binder is implemented by connections that offer channel-binding data
// (TLS exporters); the wire handshake mixes it into the password proof.
type Binder interface {
	Binding() ([]byte, error)
}

// Binding returns the channel binding of c, or nil when c has none.
func Binding(c net.Conn) ([]byte, error) {
	if b, ok := c.(Binder); ok {
		return b.Binding()
	}
	return nil, nil
}
