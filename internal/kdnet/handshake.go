package kdnet

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Handshake body layout. Both bodies start with a version byte and a kind
// byte. Offsets are from the start of the body (the datagram payload).
const (
	HandshakeVersion = 1 // body[0] of pokes and responses
	KindPoke         = 1 // body[1] of a target poke
	KindResponse     = 2 // body[1] of a host response

	// PokeSize is the size of the poke body Windows sends and BuildPoke
	// builds. ParsePoke accepts any body of at least pokeMinSize bytes.
	PokeSize = 344
	// ResponseSize is the size of the host response body.
	ResponseSize = 322

	randomOffset = 2  // 32-byte client random (poke and response)
	hostRandOff  = 34 // 32-byte host random (response)
	randomSize   = 32

	// Pokes carry three 18-byte endpoint slots (16-byte IPv6 or
	// IPv4-mapped address, then a big-endian port) at 34, 52 and 70. The
	// port of the third slot (offset 86) is the host port the target's data
	// channel is bound to, zero while it has none.
	pokeEndpointOff  = 34
	pokeEndpointSize = 18
	pokeEndpoints    = 3
	pokeHostPortOff  = 86
	pokeMinSize      = pokeEndpointOff + pokeEndpoints*pokeEndpointSize // 88
)

// ErrHandshake is wrapped by the errors of ParsePoke, ParseResponse and
// AcceptResponse.
var ErrHandshake = errors.New("kdnet: bad handshake message")

// Poke is the decoded body of a target's control-channel poke.
//
// The captured Windows 8.1 poke filled its three endpoint slots with the
// target's address (slot 0) and the host's address (slots 1 and 2), all on
// the configured port; the meaning of slots 0 and 1 is inferred from that one
// capture. Slot 2's port is documented (ntoseye) as the host port of the
// target's data channel, zero until the target accepted a response: a poke
// with HostPort() == 0 comes from a target without a session (for example
// after a reboot), a non-zero one is a keep-alive of a running session.
// Bytes after the slots are ignored; Marshal writes them as zero.
type Poke struct {
	ClientRandom [randomSize]byte
	// Endpoints are the three endpoint slots. An all-zero address decodes
	// as the zero netip.Addr; IPv4-mapped addresses decode as IPv4.
	Endpoints [pokeEndpoints]netip.AddrPort
}

// HostPort returns the host port of the target's data channel (body offset
// 86, big-endian), zero while the target has no session.
func (p Poke) HostPort() uint16 { return p.Endpoints[pokeEndpoints-1].Port() }

// Marshal returns the PokeSize-byte body of p.
func (p Poke) Marshal() []byte {
	b := make([]byte, PokeSize)
	b[0] = HandshakeVersion
	b[1] = KindPoke
	copy(b[randomOffset:], p.ClientRandom[:])
	for i, ep := range p.Endpoints {
		off := pokeEndpointOff + i*pokeEndpointSize
		a := ep.Addr().As16() // the zero Addr gives 16 zero bytes
		copy(b[off:], a[:])
		binary.BigEndian.PutUint16(b[off+16:], ep.Port())
	}
	return b
}

// BuildPoke returns a PokeSize-byte poke body with the given client random
// and host port (0 for a target without a session) and empty addresses.
func BuildPoke(clientRandom [32]byte, hostPort uint16) []byte {
	p := Poke{ClientRandom: clientRandom}
	p.Endpoints[pokeEndpoints-1] = netip.AddrPortFrom(netip.Addr{}, hostPort)
	return p.Marshal()
}

// ParsePoke decodes a poke body (the payload of a control-channel datagram
// with HostToTarget false).
func ParsePoke(body []byte) (Poke, error) {
	if err := checkHandshakeHeader(body, KindPoke, pokeMinSize, "poke"); err != nil {
		return Poke{}, err
	}
	var p Poke
	copy(p.ClientRandom[:], body[randomOffset:])
	for i := range p.Endpoints {
		off := pokeEndpointOff + i*pokeEndpointSize
		a16 := [16]byte(body[off : off+16])
		var addr netip.Addr
		if a16 != ([16]byte{}) {
			addr = netip.AddrFrom16(a16).Unmap()
		}
		p.Endpoints[i] = netip.AddrPortFrom(addr, binary.BigEndian.Uint16(body[off+16:]))
	}
	return p, nil
}

// Response is the decoded body of a host's control-channel response.
type Response struct {
	ClientRandom [randomSize]byte // echoed from the poke
	HostRandom   [randomSize]byte // fresh random bytes chosen by the host
}

// Marshal returns the ResponseSize-byte body of r: version, kind, the two
// randoms and 256 zero bytes.
func (r Response) Marshal() []byte {
	b := make([]byte, ResponseSize)
	b[0] = HandshakeVersion
	b[1] = KindResponse
	copy(b[randomOffset:], r.ClientRandom[:])
	copy(b[hostRandOff:], r.HostRandom[:])
	return b
}

// BuildResponse returns the ResponseSize-byte response body for a poke with
// clientRandom; hostRandom must come from a cryptographic random source.
func BuildResponse(clientRandom, hostRandom [32]byte) []byte {
	return Response{ClientRandom: clientRandom, HostRandom: hostRandom}.Marshal()
}

// ParseResponse decodes a response body (the payload of a control-channel
// datagram with HostToTarget true). The body must be exactly ResponseSize
// bytes, because all of it feeds the data-key derivation.
func ParseResponse(body []byte) (Response, error) {
	if err := checkHandshakeHeader(body, KindResponse, ResponseSize, "response"); err != nil {
		return Response{}, err
	}
	if len(body) != ResponseSize {
		return Response{}, fmt.Errorf("%w: response body is %d bytes, want exactly %d", ErrHandshake, len(body), ResponseSize)
	}
	var r Response
	copy(r.ClientRandom[:], body[randomOffset:])
	copy(r.HostRandom[:], body[hostRandOff:])
	return r, nil
}

func checkHandshakeHeader(body []byte, kind byte, minLen int, what string) error {
	if len(body) < minLen {
		return fmt.Errorf("%w: %s body is %d bytes, need at least %d", ErrHandshake, what, len(body), minLen)
	}
	if body[0] != HandshakeVersion {
		return fmt.Errorf("%w: %s body has handshake version %d, this implementation speaks %d", ErrHandshake, what, body[0], HandshakeVersion)
	}
	if body[1] != kind {
		return fmt.Errorf("%w: %s body has kind %d, want %d", ErrHandshake, what, body[1], kind)
	}
	return nil
}

// DeriveDataKey returns the data-channel key SHA-256(controlKey ‖
// responseBody[0:322]). Pass the response body exactly as sent on the wire;
// bytes beyond ResponseSize are ignored.
func DeriveDataKey(controlKey [KeySize]byte, responseBody []byte) [KeySize]byte {
	if len(responseBody) > ResponseSize {
		responseBody = responseBody[:ResponseSize]
	}
	h := sha256.New()
	h.Write(controlKey[:])
	h.Write(responseBody)
	var k [KeySize]byte
	h.Sum(k[:0])
	return k
}

// AnswerPoke is the host's half of the handshake: it builds the response
// body to p with hostRandom and derives the resulting data key. Send the
// body on the control channel with the poke's Seq and HostToTarget set.
func AnswerPoke(controlKey [KeySize]byte, p Poke, hostRandom [32]byte) (body []byte, dataKey [KeySize]byte) {
	body = BuildResponse(p.ClientRandom, hostRandom)
	return body, DeriveDataKey(controlKey, body)
}

// AcceptResponse is the target's half of the handshake: it checks that
// responseBody answers the poke that carried clientRandom (compared in
// constant time) and derives the data key.
func AcceptResponse(controlKey [KeySize]byte, clientRandom [32]byte, responseBody []byte) ([KeySize]byte, error) {
	r, err := ParseResponse(responseBody)
	if err != nil {
		return [KeySize]byte{}, err
	}
	if subtle.ConstantTimeCompare(r.ClientRandom[:], clientRandom[:]) != 1 {
		return [KeySize]byte{}, fmt.Errorf("%w: response echoes another poke's client random (stale or from another host)", ErrHandshake)
	}
	return DeriveDataKey(controlKey, responseBody), nil
}
