package wire

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 15 * time.Second
	// deadIntervals is how many keep-alive intervals of silence declare the
	// peer dead.
	deadIntervals = 3
	// errorWriteTimeout bounds the best-effort write of a final Error or
	// Bye frame.
	errorWriteTimeout = time.Second
)

// Config configures either role of the handshake and the resulting Conn.
// The zero value is usable: no password, default time-outs.
type Config struct {
	// Password is the shared secret; "" means none. It is never sent: the
	// handshake proves knowledge of it in both directions.
	Password string
	// Binding is channel-binding data from the transport below (a TLS
	// exporter value on ssl/spipe), mixed into the authentication
	// transcript so that proofs cannot be relayed to another channel. Both
	// sides must supply the same value; nil on plain transports. It only
	// has an effect when a password is set.
	Binding []byte
	// HandshakeTimeout bounds each handshake step (default 10s).
	HandshakeTimeout time.Duration
	// KeepAlive is the ping interval of an idle Conn (default 15s). The
	// peer is declared dead after three intervals without any frame from
	// it. Negative disables pings and the dead-peer check.
	KeepAlive time.Duration
	// Software names this side's program and version, e.g. "kdsrv/0.1"
	// (at most MaxSoftware bytes; longer is cut).
	Software string
	// Salt is the server's password salt (SaltSize bytes, from NewSalt),
	// announced in HelloReply. Server role only; required when Password is
	// set. Clients use the salt the server announces.
	Salt []byte
	// Keys caches derived proof keys; nil derives on every handshake
	// (slow: PBKDF2). A server should Prepare its keys at start-up.
	Keys *KeyCache
}

// String describes the configuration without revealing the password.
func (c Config) String() string {
	pw := "none"
	if c.Password != "" {
		pw = "set"
	}
	return fmt.Sprintf("wire.Config{Password: %s, Binding: %d bytes, HandshakeTimeout: %v, KeepAlive: %v, Software: %q, Salt: %d bytes}",
		pw, len(c.Binding), c.HandshakeTimeout, c.KeepAlive, c.Software, len(c.Salt))
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	return c
}

// handshake holds the state shared by both roles.
type handshake struct {
	ctx  context.Context
	nc   net.Conn
	dec  *Decoder
	cfg  Config
	peer string // "client" or "server": the role of the other side
	addr string // the peer's address, for messages
}

func newHandshake(ctx context.Context, nc net.Conn, cfg Config, peer string) *handshake {
	addr := "unknown address"
	if ra := nc.RemoteAddr(); ra != nil {
		addr = ra.Network() + " " + ra.String()
	}
	return &handshake{ctx: ctx, nc: nc, dec: NewDecoder(nc), cfg: cfg.withDefaults(), peer: peer, addr: addr}
}

// deadline returns the deadline of the next step.
func (h *handshake) deadline() time.Time {
	d := time.Now().Add(h.cfg.HandshakeTimeout)
	if cd, ok := h.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// write sends one frame under the step deadline and returns its bytes.
func (h *handshake) write(t Type, payload []byte) ([]byte, error) {
	b := AppendFrame(nil, t, payload)
	if err := h.nc.SetWriteDeadline(h.deadline()); err != nil {
		return nil, fmt.Errorf("setting write deadline: %w", err)
	}
	if _, err := h.nc.Write(b); err != nil {
		return nil, h.ioErr("sending "+t.String(), err)
	}
	return b, nil
}

// read receives the frame of the next step, which must be one of want.
// An Error frame becomes *RemoteError; a Bye becomes an error naming the step.
func (h *handshake) read(step string, want ...Type) (Frame, error) {
	if err := h.nc.SetReadDeadline(h.deadline()); err != nil {
		return Frame{}, fmt.Errorf("setting read deadline: %w", err)
	}
	f, err := h.dec.Next()
	if err != nil {
		return Frame{}, h.ioErr("waiting for "+step, err)
	}
	switch f.Type {
	case TypeError:
		re, err := DecodeError(f.Payload)
		if err != nil {
			return Frame{}, err
		}
		return Frame{}, re
	case TypeBye:
		code, _ := DecodeBye(f.Payload)
		if code == OK {
			return Frame{}, fmt.Errorf("the %s closed the connection while we waited for %s", h.peer, step)
		}
		return Frame{}, fmt.Errorf("the %s closed the connection (%s) while we waited for %s", h.peer, code, step)
	}
	for _, w := range want {
		if f.Type == w {
			return f, nil
		}
	}
	return Frame{}, protoErr(BadFrame, "got a %s frame while waiting for %s", f.Type, step)
}

// ioErr explains a read or write failure during the handshake.
func (h *handshake) ioErr(what string, err error) error {
	if cerr := h.ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: handshake cancelled: %w", what, cerr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &timeoutError{what: what, after: h.cfg.HandshakeTimeout, peer: h.peer}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: the %s closed the connection: %w", what, h.peer, io.ErrUnexpectedEOF)
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// proofs derives the password key for salt, closes the transcript with
// the channel binding and returns the proofs both sides expect.
func (h *handshake) proofs(tr *transcript, salt []byte) (client, server [ProofSize]byte, err error) {
	key, err := h.cfg.Keys.key(h.cfg.Password, salt)
	if err != nil {
		return client, server, err
	}
	tr.add(h.cfg.Binding)
	client, server = proofs(key, tr.sum())
	return client, server, nil
}

// checkProof decodes the peer's proof from an Auth or AuthOK payload and
// compares it with the expected one in constant time; a mismatch is
// AccessDenied with the message wrong.
func checkProof(payload []byte, want [ProofSize]byte, wrong string) error {
	got, err := DecodeProof(payload)
	if err != nil {
		return err
	}
	if !hmac.Equal(got[:], want[:]) {
		return protoErr(AccessDenied, "%s", wrong)
	}
	return nil
}

// timeoutError is a handshake step that ran out of time.
type timeoutError struct {
	what  string
	after time.Duration
	peer  string
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s: no answer from the %s within %v (is the peer a kdsrv endpoint, and is it overloaded?)", e.what, e.peer, e.after)
}
func (e *timeoutError) Timeout() bool { return true }
func (e *timeoutError) Unwrap() error { return os.ErrDeadlineExceeded }

// fail sends a best-effort Error frame for err (when it carries a code that
// should reach the peer), closes the connection and returns err wrapped
// with the role and peer address.
func (h *handshake) fail(role string, err error) error {
	var code Code
	msg := ""
	var pe *ProtocolError
	var te *timeoutError
	switch {
	case errors.Is(err, ErrPasswordRequired):
		// The client already said Bye.
	case errors.As(err, &te):
		if role == "server" {
			code, msg = HandshakeTimeout, fmt.Sprintf("handshake step not completed within %v", h.cfg.HandshakeTimeout)
		}
	case errors.As(err, &pe):
		code, msg = pe.Code, pe.Msg
		if pe.Code == AccessDenied {
			msg = "access denied" // reveal nothing more to the peer
		}
	}
	if code != OK && h.ctx.Err() == nil {
		_ = h.nc.SetWriteDeadline(time.Now().Add(min(errorWriteTimeout, h.cfg.HandshakeTimeout)))
		_, _ = h.nc.Write(AppendFrame(nil, TypeError, EncodeError(code, msg)))
	}
	_ = h.nc.Close()
	return fmt.Errorf("wire: %s handshake with %s: %w", role, h.addr, err)
}

// watchContext makes blocking I/O on nc return when ctx is done. The
// returned stop function reports false if ctx fired.
func watchContext(ctx context.Context, nc net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// Client runs the client role of the handshake over nc (whichever side
// dialed) and returns a ready Conn. ctx bounds the whole handshake in
// addition to cfg.HandshakeTimeout per step. On failure nc is closed; errors
// the server reported are *RemoteError (use errors.As or ErrorCode).
//
// A client with a password facing a server that requires none succeeds with
// Conn.Authenticated false; the caller should warn the user.
func Client(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	return runHandshake(ctx, nc, cfg, "client", (*handshake).client)
}

// runHandshake runs one role's steps (client or server) over nc with ctx
// watched, and starts the Conn they produce; on failure it tells the peer
// what it can (fail) and closes nc.
func runHandshake(ctx context.Context, nc net.Conn, cfg Config, role string, steps func(*handshake) (*Conn, error)) (*Conn, error) {
	peer := "server"
	if role == "server" {
		peer = "client"
	}
	h := newHandshake(ctx, nc, cfg, peer)
	stop := watchContext(ctx, nc)
	c, err := steps(h)
	if !stop() && err == nil {
		err = fmt.Errorf("handshake cancelled: %w", ctx.Err())
	}
	if err != nil {
		return nil, h.fail(role, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c.start()
	return c, nil
}

func (h *handshake) client() (*Conn, error) {
	hello := Hello{MinVersion: MinVersion, MaxVersion: Version, Software: h.cfg.Software}
	if _, err := rand.Read(hello.Nonce[:]); err != nil {
		return nil, protoErr(Internal, "no randomness for the nonce: %v", err)
	}
	tr := newTranscript()
	b, err := h.write(TypeHello, EncodeHello(hello))
	if err != nil {
		return nil, err
	}
	tr.add(b)

	f, err := h.read("HelloReply", TypeHelloReply)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == VersionMismatch {
			return nil, fmt.Errorf("%w; upgrade kdclient or kdsrv so that both speak a common protocol version", err)
		}
		return nil, err
	}
	tr.add(AppendFrameFlags(nil, f.Type, f.Flags, f.Payload))
	reply, err := DecodeHelloReply(f.Payload)
	if err != nil {
		return nil, err
	}
	if reply.Version < MinVersion || reply.Version > Version {
		return nil, protoErr(VersionMismatch, "server chose protocol version %d, client supports %d-%d; upgrade kdclient or kdsrv", reply.Version, MinVersion, Version)
	}
	c := newConn(h, false, int(reply.Version), reply.Software)
	if !reply.PasswordRequired {
		return c, nil
	}
	if h.cfg.Password == "" {
		// Say goodbye politely; the server would refuse anything else.
		_, _ = h.write(TypeBye, EncodeBye(AccessDenied))
		return nil, ErrPasswordRequired
	}
	clientProof, serverProof, err := h.proofs(tr, reply.Salt[:])
	if err != nil {
		return nil, err
	}
	if _, err := h.write(TypeAuth, EncodeProof(clientProof)); err != nil {
		return nil, err
	}
	f, err = h.read("AuthOK", TypeAuthOK)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == AccessDenied {
			return nil, fmt.Errorf("%w (check password=... in server=@{...}; over ssl/spipe a TLS-terminating proxy in between also causes this)", err)
		}
		return nil, err
	}
	if err := checkProof(f.Payload, serverProof, "the server could not prove that it knows the password: it has a different password, or something between us is impersonating or relaying it"); err != nil {
		return nil, err
	}
	c.authenticated = true
	return c, nil
}

// Server runs the server role of the handshake over nc (whichever side
// dialed) and returns a ready Conn. ctx bounds the whole handshake in
// addition to cfg.HandshakeTimeout per step. On failure the server sends an
// Error frame when the protocol calls for one (VersionMismatch,
// AccessDenied, HandshakeTimeout, BadFrame) and closes nc.
func Server(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	return runHandshake(ctx, nc, cfg, "server", (*handshake).server)
}

func (h *handshake) server() (*Conn, error) {
	tr := newTranscript()
	f, err := h.read("Hello", TypeHello)
	if err != nil {
		return nil, err
	}
	tr.add(AppendFrameFlags(nil, f.Type, f.Flags, f.Payload))
	hello, err := DecodeHello(f.Payload)
	if err != nil {
		return nil, err
	}
	lo, hi := max(int(hello.MinVersion), MinVersion), min(int(hello.MaxVersion), Version)
	if lo > hi {
		return nil, protoErr(VersionMismatch, "client supports protocol versions %d-%d, server supports %d-%d",
			hello.MinVersion, hello.MaxVersion, MinVersion, Version)
	}
	reply := HelloReply{Version: uint16(hi), PasswordRequired: h.cfg.Password != "", Software: h.cfg.Software}
	if _, err := rand.Read(reply.Nonce[:]); err != nil {
		return nil, protoErr(Internal, "no randomness for the nonce: %v", err)
	}
	if reply.PasswordRequired {
		if len(h.cfg.Salt) != SaltSize {
			return nil, protoErr(Internal, "server has a password but no %d-byte salt (wire.Config.Salt)", SaltSize)
		}
		copy(reply.Salt[:], h.cfg.Salt)
	}
	b, err := h.write(TypeHelloReply, EncodeHelloReply(reply))
	if err != nil {
		return nil, err
	}
	tr.add(b)
	c := newConn(h, true, hi, hello.Software)
	if !reply.PasswordRequired {
		return c, nil
	}
	clientProof, serverProof, err := h.proofs(tr, reply.Salt[:])
	if err != nil {
		return nil, err
	}
	f, err = h.read("Auth", TypeAuth)
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Code == BadFrame {
			// Anything but Auth here is an unauthenticated client.
			return nil, protoErr(AccessDenied, "client skipped authentication: %s", pe.Msg)
		}
		return nil, err
	}
	if err := checkProof(f.Payload, clientProof, "wrong password proof from the client (wrong password, or a relay between differently bound TLS channels)"); err != nil {
		return nil, err
	}
	if _, err := h.write(TypeAuthOK, EncodeProof(serverProof)); err != nil {
		return nil, err
	}
	c.authenticated = true
	return c, nil
}

// refuseWriteTimeout bounds Refuse's write of the Error frame.
const refuseWriteTimeout = 2 * time.Second

// Refuse turns a peer away before any handshake: it sends an Error frame
// with code and msg (best effort, under a short write deadline) and closes
// nc. A client waiting for HelloReply reports it as a *RemoteError with
// that code, e.g. TooManyAttempts or Busy. The returned error is the write
// error, if any; nc is closed either way.
func Refuse(nc net.Conn, code Code, msg string) error {
	_ = nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	_, err := nc.Write(AppendFrame(nil, TypeError, EncodeError(code, msg)))
	if cerr := nc.Close(); err == nil {
		err = cerr
	}
	return err
}
