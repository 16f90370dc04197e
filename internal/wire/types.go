// Package wire implements the protocol spoken between kdsrv (the KD
// connection server) and kdclient (the smart client): framing, the versioned
// handshake with mutual password authentication, typed payloads, keep-alives
// and clean close.
//
// The protocol runs over any reliable byte stream (TCP, a unix socket standing
// in for a named pipe, a channel of the COM multiplexer, or TLS on top of one
// of those). Each frame is an 8-byte header followed by at most MaxPayload
// payload bytes; all integers in headers and in the payloads defined here are
// big-endian (the KD packet bytes carried inside KD frames keep their own
// little-endian layout). docs/protocol.md is the normative description; the
// constants in this file mirror its tables.
//
// The roles "client" and "server" are protocol roles, not the side that
// dialed: for reverse (clicon) connections kdsrv dials and still runs Server.
package wire

import "fmt"

// Protocol constants.
const (
	// Magic is the first byte of every frame header ('K').
	Magic byte = 0x4B
	// HeaderSize is the size of a frame header: magic u8, type u8,
	// flags u16, length u32.
	HeaderSize = 8
	// MaxPayload is the largest payload a frame may carry. A header that
	// announces more is refused before any buffer is allocated for it.
	MaxPayload = 64 << 10
	// Version is the highest protocol version this package speaks.
	// Version 2 added the per-server salt in HelloReply, the Notice frame,
	// console watchers (OpenWatch, Console) and the TooManyAttempts and
	// Busy codes.
	Version = 2
	// MinVersion is the lowest protocol version this package speaks.
	// Version 1 (fixed password salt, every Error fatal) is no longer
	// spoken: a version-1 peer gets a VersionMismatch error naming both
	// ranges.
	MinVersion = 2
	// SaltSize is the size of the per-server password salt in HelloReply.
	SaltSize = 16
	// NonceSize is the size of the handshake nonces.
	NonceSize = 32
	// ProofSize is the size of an authentication proof (HMAC-SHA-256).
	ProofSize = 32
	// PingSize is the size of a Ping or Pong payload.
	PingSize = 8
)

// Frame header flag bits (the u16 at offset 2 of the header).
const (
	// FlagIgnorable marks a frame that a receiver which does not know its
	// type may skip instead of failing the connection. It lets later
	// protocol versions add optional frames (hints, statistics). A frame of
	// a known type is processed normally whatever this bit says.
	FlagIgnorable uint16 = 0x0001

	// flagsKnown is the set of flag bits version 1 defines; a header with
	// any other bit set is refused with BadFrame.
	flagsKnown = FlagIgnorable
)

// Type is the frame type (byte 1 of the header).
type Type uint8

// Frame types. Directions: C→S client to server, S→C server to client.
// Values are grouped: 0x0_ handshake, 0x1_ session, 0x2_ target traffic,
// 0x3_ control, 0x4_ liveness, 0x7_ errors and close.
const (
	// TypeHello (C→S, first frame): min and max supported version, client
	// nonce, software string.
	TypeHello Type = 0x01
	// TypeHelloReply (S→C): chosen version, server nonce, flags
	// (bit 0 password required), software string.
	TypeHelloReply Type = 0x02
	// TypeAuth (C→S): the 32-byte client proof.
	TypeAuth Type = 0x03
	// TypeAuthOK (S→C): the 32-byte server proof; the client checks it.
	TypeAuthOK Type = 0x04

	// TypeOpen (C→S): open a target: flags (bit 0 take over) and the
	// target spec string (canonical trans=@{...}, opaque here).
	TypeOpen Type = 0x10
	// TypeOpened (S→C): the target is open: session id and info string.
	TypeOpened Type = 0x11
	// TypeDetach (C→S, empty): release the target; the connection stays
	// usable for another Open, or the client closes it.
	TypeDetach Type = 0x12
	// TypeDetached (S→C, empty): the target was released.
	TypeDetached Type = 0x13
	// TypeState (S→C): a change of the target link's state (StateCode +
	// text), e.g. the target stopped responding.
	TypeState Type = 0x14
	// TypeNotice (S→C): a non-fatal notice: code u16 + UTF-8 text, e.g.
	// a KD packet the server refused to forward. The connection and the
	// session stay up.
	TypeNotice Type = 0x15

	// TypeKD (both): one whole KD data packet: packet type u16 + the
	// packet's payload, without leader, id, checksum or trailer.
	TypeKD Type = 0x20
	// TypeBreakIn (C→S, empty): ask the server to break in to the target.
	TypeBreakIn Type = 0x21
	// TypeReset (C→S, empty): the local debugger resynchronised; ask the
	// server to re-send the target's pending state (state change).
	TypeReset Type = 0x22
	// TypeConsole (S→C): raw bytes the target wrote on its line outside
	// KD packets (boot text on a shared serial port), sent to console
	// watchers (Open with OpenWatch).
	TypeConsole Type = 0x23

	// TypeControl (both): request (C→S) or reply (S→C): request id u32,
	// command u16, status u16, body.
	TypeControl Type = 0x30

	// TypePing (both): 8 opaque bytes; the receiver answers with a Pong
	// carrying the same bytes.
	TypePing Type = 0x40
	// TypePong (both): the answer to a Ping.
	TypePong Type = 0x41

	// TypeError (both): error code u16 + UTF-8 message. Fatal: the sender
	// closes the connection right after sending it.
	TypeError Type = 0x70
	// TypeBye (both): clean close, optional reason code u16. The sender
	// closes the connection after sending it.
	TypeBye Type = 0x71
)

// direction of a frame type.
type direction uint8

const (
	dirC2S  direction = 1 << 0
	dirS2C  direction = 1 << 1
	dirBoth           = dirC2S | dirS2C
)

// typeInfo is the one table of frame types: name, direction, and whether
// the frame belongs to the handshake.
var typeInfo = map[Type]struct {
	name      string
	dir       direction
	handshake bool
}{
	TypeHello:      {"Hello", dirC2S, true},
	TypeHelloReply: {"HelloReply", dirS2C, true},
	TypeAuth:       {"Auth", dirC2S, true},
	TypeAuthOK:     {"AuthOK", dirS2C, true},
	TypeOpen:       {"Open", dirC2S, false},
	TypeOpened:     {"Opened", dirS2C, false},
	TypeDetach:     {"Detach", dirC2S, false},
	TypeDetached:   {"Detached", dirS2C, false},
	TypeState:      {"State", dirS2C, false},
	TypeNotice:     {"Notice", dirS2C, false},
	TypeKD:         {"KD", dirBoth, false},
	TypeBreakIn:    {"BreakIn", dirC2S, false},
	TypeReset:      {"Reset", dirC2S, false},
	TypeConsole:    {"Console", dirS2C, false},
	TypeControl:    {"Control", dirBoth, false},
	TypePing:       {"Ping", dirBoth, false},
	TypePong:       {"Pong", dirBoth, false},
	TypeError:      {"Error", dirBoth, false},
	TypeBye:        {"Bye", dirBoth, false},
}

// Known reports whether t is a frame type of this protocol version.
func (t Type) Known() bool {
	_, ok := typeInfo[t]
	return ok
}

func (t Type) String() string {
	if ti, ok := typeInfo[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Code is an error code carried by Error frames, Bye reasons and Control
// replies.
type Code uint16

// Error codes. Zero means "no error" (a normal Bye, a successful Control
// reply).
const (
	// OK is not an error: a normal close or a successful reply.
	OK Code = 0
	// BadFrame: a malformed frame, an unknown frame type, or a frame not
	// allowed in the current state or direction.
	BadFrame Code = 1
	// FrameTooLarge: a header announced more than MaxPayload bytes.
	FrameTooLarge Code = 2
	// VersionMismatch: the two sides have no protocol version in common.
	VersionMismatch Code = 3
	// AccessDenied: authentication failed or is missing.
	AccessDenied Code = 4
	// HandshakeTimeout: the peer did not complete a handshake step in time.
	HandshakeTimeout Code = 5
	// NotAllowed: the server's allow-list refuses the requested target.
	NotAllowed Code = 6
	// InUse: the target is owned by another session.
	InUse Code = 7
	// TargetUnavailable: the server could not open the target link.
	TargetUnavailable Code = 8
	// TargetNotResponding: the target link is open but the target is silent.
	TargetNotResponding Code = 9
	// BadRequest: a well-formed frame with an invalid request (bad target
	// spec, KD frame before Open, unknown Control command...).
	BadRequest Code = 10
	// ServerShutdown: the server is shutting down.
	ServerShutdown Code = 11
	// Internal: an unexpected failure inside the sender.
	Internal Code = 12
	// Refused: a generic policy refusal (e.g. remote shutdown not allowed).
	Refused Code = 13
	// TooManyAttempts: the peer's address failed authentication too often;
	// it must wait before trying again (the message says how long).
	TooManyAttempts Code = 14
	// Busy: the server is at a connection limit; try again later.
	Busy Code = 15
)

var codeNames = [...]string{
	OK:                  "ok",
	BadFrame:            "bad frame",
	FrameTooLarge:       "frame too large",
	VersionMismatch:     "version mismatch",
	AccessDenied:        "access denied",
	HandshakeTimeout:    "handshake timeout",
	NotAllowed:          "target not allowed",
	InUse:               "target in use",
	TargetUnavailable:   "target unavailable",
	TargetNotResponding: "target not responding",
	BadRequest:          "bad request",
	ServerShutdown:      "server shutdown",
	Internal:            "internal error",
	Refused:             "refused",
	TooManyAttempts:     "too many failed attempts",
	Busy:                "server busy",
}

// String returns a short lower-case description of the code, e.g.
// "access denied".
func (c Code) String() string { return enumName(codeNames[:], c, "error code %d") }

// StateCode is the state reported by a State frame.
type StateCode uint16

// Target link states reported by State frames.
const (
	// StateRunning: the target runs (a Continue was delivered).
	StateRunning StateCode = 1
	// StateStopped: the target is stopped and waits for the debugger.
	StateStopped StateCode = 2
	// StateNotResponding: the target does not answer on its link; the
	// server keeps trying.
	StateNotResponding StateCode = 3
	// StateReconnected: the target link came back (e.g. after a reboot or a
	// VM pipe reconnect).
	StateReconnected StateCode = 4
	// StateLost: the target link is gone for good; the session ends.
	StateLost StateCode = 5
)

var stateNames = [...]string{
	StateRunning:       "running",
	StateStopped:       "stopped",
	StateNotResponding: "not responding",
	StateReconnected:   "reconnected",
	StateLost:          "lost",
}

func (s StateCode) String() string { return enumName(stateNames[:], s, "state(%d)") }

// Command is the command field of a Control frame.
type Command uint16

// Control commands. Values below 0x8000 are reserved for this protocol;
// 0x8000 and up are free for private experiments.
const (
	// CmdShutdown asks the server process to shut down (endpsrv). Body
	// empty. The server may answer Refused.
	CmdShutdown Command = 1
	// CmdSetOption sets a per-session option. Body: UTF-8 "name=value",
	// e.g. "readahead=0".
	CmdSetOption Command = 2
	// CmdGetInfo asks for a description of the server and session. Body of
	// the request empty; reply body UTF-8 text.
	CmdGetInfo Command = 3
)

var commandNames = [...]string{CmdShutdown: "shutdown", CmdSetOption: "set-option", CmdGetInfo: "get-info"}

func (c Command) String() string { return enumName(commandNames[:], c, "command(%d)") }

// enumName is the String method of the protocol's u16 enumerations:
// names[v], or fallback (a format for the number) when v has no name.
func enumName[T ~uint16](names []string, v T, fallback string) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf(fallback, uint16(v))
}
