package wire

import (
	"errors"
	"fmt"
)

// RemoteError is an error the peer reported in an Error frame. The peer
// closes the connection after sending it.
type RemoteError struct {
	Code Code   // what went wrong
	Msg  string // the peer's explanation, sanitised for display
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return "peer reported: " + e.Code.String()
	}
	return fmt.Sprintf("peer reported %s: %s", e.Code, e.Msg)
}

// ProtocolError is a protocol violation or failure detected locally (a bad
// frame from the peer, a failed authentication check). Code is the code this
// side sends (or would send) to the peer in an Error frame.
type ProtocolError struct {
	Code Code
	Msg  string
}

func (e *ProtocolError) Error() string {
	if e.Msg == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Msg
}

func protoErr(code Code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrorCode extracts the protocol error code from err: the code of a
// *RemoteError or a *ProtocolError anywhere in its chain. ok is false if err
// carries no code.
func ErrorCode(err error) (code Code, ok bool) {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code, true
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code, true
	}
	return OK, false
}

// ErrPeerDead is wrapped by the error Recv returns when nothing arrived from
// the peer for three keep-alive intervals.
var ErrPeerDead = errors.New("peer silent for three keep-alive intervals")

// ErrPasswordRequired is returned (wrapped) by Client when the server
// requires a password and Config.Password is empty.
var ErrPasswordRequired = &ProtocolError{Code: AccessDenied, Msg: "the server requires a password (add password=... to server=@{...})"}
