package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"kdsrv/internal/certstore"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// The ssl and spipe transports are TLS over another transport: ssl runs over
// whatever the tcp entry of the table provides (plain listeners, port ranges,
// IPv6, and reverse connections with clicon=), spipe over the npipe entry.
// TLS roles never follow the direction of the dial: kdsrv is always the TLS
// server, also when it dials its client (ssl clicon).
//
// The server's TLS handshake runs lazily, on the first Binding, Read or
// Write of the accepted connection, in the connection's own goroutine; the
// accept loop never waits for a client. Binding bounds it with
// Options.TLSHandshakeTimeout. Both sides return wire.TLSBinding as their
// channel binding, so that the wire password proof is tied to the TLS
// session.

// DefaultTLSHandshakeTimeout bounds a TLS handshake when neither
// Options.TLSHandshakeTimeout nor the caller's context says otherwise.
const DefaultTLSHandshakeTimeout = wire.DefaultHandshakeTimeout

// innerProto is the transport that carries TLS for p.
func innerProto(p spec.Proto) spec.Proto {
	if p == spec.SPipe {
		return spec.NPipe
	}
	return spec.TCP
}

// innerTransport returns a copy of t for the transport below TLS: the same
// addresses, without the TLS keys.
func innerTransport(t *spec.Transport) *spec.Transport {
	in := *t
	in.Proto = innerProto(t.Proto)
	in.TLSProto, in.CertUser, in.MachUser, in.CAFile, in.Thumbprint = "", "", "", "", ""
	return &in
}

// innerListen and innerDial return the transport below TLS: tcp for ssl,
// npipe for spipe.
func innerListen(t *spec.Transport) ListenFunc {
	if innerProto(t.Proto) == spec.NPipe {
		return listenNPipe
	}
	return listenTCP
}

func innerDial(t *spec.Transport) DialFunc {
	if innerProto(t.Proto) == spec.NPipe {
		return dialNPipe
	}
	return dialTCP
}

// ServerCertificate finds the certificate an ssl/spipe server transport
// names: certuser= in the user store, machuser= in the machine store. The
// certstore errors say what the store holds and what to do.
func ServerCertificate(t *spec.Transport) (*certstore.Entry, error) {
	switch {
	case t.CertUser != "" && t.MachUser != "":
		return nil, errors.New("give either certuser= or machuser=, not both")
	case t.CertUser != "":
		return certstore.Find(certstore.UserStore(), t.CertUser)
	case t.MachUser != "":
		return certstore.Find(certstore.MachineStore(), t.MachUser)
	}
	return nil, errors.New("no server certificate: add certuser=NAME (user store) or machuser=NAME (machine store); \"kdsrv cert create NAME\" makes one")
}

// ListenTLS opens the server side of the ssl or spipe transport t over the
// listener that inner opens for the same addresses; a nil inner is the
// transport below (tcp for ssl, npipe for spipe). It finds the
// certificate first, so a missing or unusable one fails here, at start-up,
// with the store's explanation.
func ListenTLS(ctx context.Context, t *spec.Transport, o Options, inner ListenFunc) (Listener, error) {
	if err := certstore.CheckProto(t.TLSProto); err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	e, err := ServerCertificate(t)
	if err != nil {
		return nil, fmt.Errorf("%s transport: server certificate: %w", t.Proto, err)
	}
	if inner == nil {
		inner = innerListen(t)
	}
	in, err := inner(ctx, innerTransport(t), o)
	if err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	timeout := o.TLSHandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultTLSHandshakeTimeout
	}
	return &tlsListener{
		inner:   in,
		cfg:     certstore.ServerTLS(e),
		timeout: timeout,
		display: tlsDisplay(t, in.Display()),
	}, nil
}

// tlsDisplay turns the display form of the transport below TLS
// ("tcp:port=53:60,ipversion=6") into the ssl/spipe form a client types
// ("ssl:proto=tls1,certuser=NAME,port=53:60,ipversion=6"), naming the
// certificate the way the server was told to.
func tlsDisplay(t *spec.Transport, inner string) string {
	_, rest, _ := strings.Cut(inner, ":")
	var b strings.Builder
	b.WriteString(string(t.Proto))
	b.WriteString(":proto=tls1")
	if t.CertUser != "" {
		b.WriteString(",certuser=" + t.CertUser)
	}
	if t.MachUser != "" {
		b.WriteString(",machuser=" + t.MachUser)
	}
	if rest != "" {
		b.WriteString("," + rest)
	}
	return b.String()
}

// tlsListener accepts connections from the transport below and wraps each
// in a server-side TLS connection whose handshake has not started yet.
type tlsListener struct {
	inner   Listener
	cfg     *tls.Config
	timeout time.Duration
	display string
}

// Accept returns the next connection; the TLS handshake is left to the
// connection (see tlsConn), so a silent client cannot stall other accepts.
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(c, l.cfg), server: true, timeout: l.timeout}, nil
}

// Close closes the listener below.
func (l *tlsListener) Close() error { return l.inner.Close() }

// Addr is the address of the listener below (a *net.TCPAddr for ssl, so
// IcfEnable opens the right port).
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// Display is the ssl/spipe form of the transport in use.
func (l *tlsListener) Display() string { return l.display }

// Reverse reports whether the listener below dials its client (clicon=).
func (l *tlsListener) Reverse() bool {
	r, ok := l.inner.(interface{ Reverse() bool })
	return ok && r.Reverse()
}

// tlsConn is one end of an ssl/spipe connection. It implements Binder.
type tlsConn struct {
	*tls.Conn
	server  bool
	timeout time.Duration // server side: bound on the lazy handshake
}

// Handshake completes the TLS handshake if it has not run yet, within the
// connection's time-out; a failure says who the peer was and what probably
// went wrong. Later calls return the first result at once.
func (c *tlsConn) Handshake() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.Conn.HandshakeContext(ctx); err != nil {
		return serverHandshakeError(c.Conn, c.timeout, err)
	}
	return nil
}

// Binding completes the handshake (server side) and returns the TLS
// exporter value that the wire handshake mixes into the password proof
// (wire.TLSBinding); both ends of one TLS session get the same bytes.
func (c *tlsConn) Binding() ([]byte, error) {
	if c.server {
		if err := c.Handshake(); err != nil {
			return nil, err
		}
	}
	return wire.TLSBinding(c.Conn)
}

// serverHandshakeError explains a failed server-side handshake for the log.
func serverHandshakeError(c *tls.Conn, timeout time.Duration, err error) error {
	peer := "client " + addrString(c.RemoteAddr())
	var hint string
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("TLS handshake with %s did not finish within %v (a client that does not speak TLS, or a stalled network); dropped it", peer, timeout)
	case errors.As(err, &rh):
		hint = "the client does not speak TLS: it must connect with ssl:/spipe: (not tcp:/npipe:)"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		hint = "the client closed the connection during the handshake; it probably rejected this server's certificate (see the client's message)"
	case isRemoteCertAlert(err):
		hint = "the client rejected this server's certificate: it pins another certificate or does not trust its issuer (the client's message says which)"
	default:
		if m := err.Error(); strings.Contains(m, "protocol version") || strings.Contains(m, "unsupported versions") {
			hint = "the client offers only protocols older than TLS 1.2, which this server refuses; upgrade the client"
		} else {
			hint = "check the client's message for the reason"
		}
	}
	return fmt.Errorf("TLS handshake with %s failed: %w; %s", peer, err, hint)
}

// isRemoteCertAlert reports whether err is a TLS alert from the peer about
// our certificate (crypto/tls reports received alerts as a *net.OpError
// with Op "remote error").
func isRemoteCertAlert(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	m := op.Err.Error()
	return strings.Contains(m, "certificate") || strings.Contains(m, "unknown ca")
}

func addrString(a net.Addr) string {
	if a == nil || a.String() == "" {
		return "(unnamed pipe)"
	}
	return a.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ClientVerify returns how the client side of t checks the server:
// certuser=/machuser= pin a copy of the server's certificate kept in the
// client's own store (certstore.FindPeer), thumbprint= pins a thumbprint,
// cafile= trusts a CA file, and with none of them the system roots verify
// the certificate for the host name. The host checked (and sent as SNI) is
// server= or, for a reverse connection, clicon=.
func ClientVerify(t *spec.Transport) (certstore.ClientVerify, error) {
	v := certstore.ClientVerify{
		Thumbprint: t.Thumbprint,
		CAFile:     t.CAFile,
		ServerName: serverName(t),
	}
	var err error
	switch {
	case t.CertUser != "":
		v.Pin, err = certstore.FindPeer(certstore.UserStore(), t.CertUser)
	case t.MachUser != "":
		v.Pin, err = certstore.FindPeer(certstore.MachineStore(), t.MachUser)
	}
	if err != nil {
		return certstore.ClientVerify{}, fmt.Errorf("the server's certificate to pin (certuser=/machuser= on the client): %w", err)
	}
	return v, nil
}

// serverName is the host a client expects the server to be.
func serverName(t *spec.Transport) string {
	h := t.Server
	if t.Reverse() {
		h = t.Clicon
	}
	h = strings.Trim(h, "[]")
	if h == "." {
		return "localhost"
	}
	return h
}

// DialTLS opens the client side of the ssl or spipe transport t over the
// connection that inner opens for the same addresses (nil: the
// transport below, tcp for ssl, npipe for spipe), and completes the TLS
// handshake before returning (bounded by ctx, and by
// DefaultTLSHandshakeTimeout when ctx has no deadline). A server that is
// not trusted, or that does not speak TLS, fails here with a message that
// says what was expected and what was found.
func DialTLS(ctx context.Context, t *spec.Transport, inner DialFunc) (net.Conn, error) {
	if err := certstore.CheckProto(t.TLSProto); err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	v, err := ClientVerify(t)
	if err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	cfg, err := certstore.ClientTLS(v)
	if err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	if inner == nil {
		inner = innerDial(t)
	}
	c, err := inner(ctx, innerTransport(t))
	if err != nil {
		return nil, fmt.Errorf("%s transport: %w", t.Proto, err)
	}
	hctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, DefaultTLSHandshakeTimeout)
		defer cancel()
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, clientHandshakeError(t, c, v, err)
	}
	return &tlsConn{Conn: tc, timeout: DefaultTLSHandshakeTimeout}, nil
}

// clientHandshakeError explains a failed client-side handshake.
func clientHandshakeError(t *spec.Transport, c net.Conn, v certstore.ClientVerify, err error) error {
	where := fmt.Sprintf("%s transport: TLS handshake with kdsrv at %s", t.Proto, addrString(c.RemoteAddr()))
	var rh tls.RecordHeaderError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	switch {
	case errors.Is(err, certstore.ErrPinMismatch):
		return fmt.Errorf("%s: the server is not the one you pinned: %w", where, err)
	case errors.As(err, &uae):
		return fmt.Errorf("%s: %w; the server's certificate was not issued by a CA you trust: give cafile=PATH (its CA) or pin it with thumbprint=HEX", where, err)
	case errors.As(err, &hne):
		return fmt.Errorf("%s: %w; connect using a name the certificate lists, or pin it with thumbprint=HEX", where, err)
	case errors.As(err, &cie):
		return fmt.Errorf("%s: %w; the server's certificate is expired, not yet valid or not meant for servers: ask its operator to renew it", where, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("%s did not finish in time: %w; is the server listening with %s (not %s) there?", where, err, t.Proto, innerProto(t.Proto))
	case errors.As(err, &rh):
		return fmt.Errorf("%s: %w; the server does not speak TLS there: it probably listens with %s, so connect with %s: (or start it with -t %s:...)", where, err, innerProto(t.Proto), innerProto(t.Proto), t.Proto)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: the server closed the connection during the TLS handshake (%w); is it listening with %s (not %s)?", where, err, t.Proto, innerProto(t.Proto))
	}
	return fmt.Errorf("%s: %w", where, err)
}
