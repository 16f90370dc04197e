package kdnet

import (
	"encoding/binary"
	"errors"
	"fmt"

	"kdsrv/internal/kd"
)

// KD packets on the data channel. A data-channel payload is one KD packet
// in KDCOM's header layout but without the 0xAA trailer, a lone break-in
// byte, or the 12-byte pseudo packet a target sends right after the
// handshake.
const (
	// HostInitialID is the id of the host's first data packet of a
	// session; later packets count up by IDStep.
	HostInitialID uint32 = 0x80000000
	// IDStep is how much a side's packet id grows per new data packet
	// (KDNET has no bit-0 toggle and no sync bit).
	IDStep uint32 = 2
	// PseudoPacketSize is the size of the type-0 pseudo packet: leader 0,
	// type 0, byte count 0, then four bytes (the sender's packet id). A
	// target sends it right after the handshake and WinDbg answers it
	// with a RESEND control packet.
	PseudoPacketSize = 12
)

// PacketKind says what a data-channel payload holds.
type PacketKind uint8

// Kinds of data-channel payloads.
const (
	KindData    PacketKind = iota + 1 // a KD data packet (leader "0000")
	KindControl                       // ACK, RESEND or RESET (leader "iiii")
	KindBreakIn                       // the single byte 0x62
	KindPseudo                        // the 12-byte type-0 pseudo packet
)

var kindNames = [...]string{KindData: "data", KindControl: "control", KindBreakIn: "break-in", KindPseudo: "pseudo"}

// String returns a short name for k.
func (k PacketKind) String() string {
	if k != 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrPacket is wrapped by the errors of ParsePacket.
var ErrPacket = errors.New("kdnet: bad KD packet")

// AppendPacket appends the KDNET form of p to dst: a control packet is its
// 16-byte header, a data packet header and payload (checksum filled in, no
// trailer). It panics if a data payload exceeds kd.MaxPayload, like
// kd.AppendPacket.
func AppendPacket(dst []byte, p kd.Packet) []byte {
	b := kd.AppendPacket(dst, p)
	if !p.Type.IsControl() {
		b = b[:len(b)-1] // drop the 0xAA trailer
	}
	return b
}

// AppendPseudo appends the 12-byte pseudo packet carrying id.
func AppendPseudo(dst []byte, id uint32) []byte {
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	return binary.LittleEndian.AppendUint32(dst, id)
}

// ParsePacket decodes a data-channel payload. For KindData and KindControl
// the packet's fields are returned (Payload aliases b); for KindPseudo, ID
// holds the pseudo packet's last four bytes. A data packet must have a
// known data type, a byte count of at most kd.MaxPayload that matches the
// datagram, and a correct checksum; a control packet must be exactly a
// header with a control type.
func ParsePacket(b []byte) (PacketKind, kd.Packet, error) {
	switch {
	case len(b) == 1 && b[0] == kd.BreakInByte:
		return KindBreakIn, kd.Packet{}, nil
	case len(b) == PseudoPacketSize && binary.LittleEndian.Uint64(b) == 0:
		return KindPseudo, kd.Packet{ID: binary.LittleEndian.Uint32(b[8:])}, nil
	case len(b) < kd.HeaderSize:
		return 0, kd.Packet{}, fmt.Errorf("%w: %d bytes is shorter than a KD packet header (%d)", ErrPacket, len(b), kd.HeaderSize)
	}
	leader := binary.LittleEndian.Uint32(b)
	p := kd.Packet{
		Type: kd.PacketType(binary.LittleEndian.Uint16(b[4:])),
		ID:   binary.LittleEndian.Uint32(b[8:]),
	}
	count := int(binary.LittleEndian.Uint16(b[6:]))
	switch leader {
	case kd.ControlLeader:
		if !p.Type.IsControl() {
			return 0, kd.Packet{}, fmt.Errorf("%w: control leader with type %s", ErrPacket, p.Type)
		}
		if len(b) != kd.HeaderSize || count != 0 {
			return 0, kd.Packet{}, fmt.Errorf("%w: %s control packet of %d bytes with byte count %d, want a bare %d-byte header", ErrPacket, p.Type, len(b), count, kd.HeaderSize)
		}
		return KindControl, p, nil
	case kd.DataLeader:
		if p.Type.IsControl() || p.Type == kd.TypeUnused || p.Type >= kd.TypeMax {
			return 0, kd.Packet{}, fmt.Errorf("%w: data leader with type %s", ErrPacket, p.Type)
		}
		if count > kd.MaxPayload {
			return 0, kd.Packet{}, fmt.Errorf("%w: byte count %d exceeds %d", ErrPacket, count, kd.MaxPayload)
		}
		if len(b) != kd.HeaderSize+count {
			return 0, kd.Packet{}, fmt.Errorf("%w: byte count %d but %d payload bytes in the datagram", ErrPacket, count, len(b)-kd.HeaderSize)
		}
		p.Payload = b[kd.HeaderSize:len(b):len(b)]
		if sum := binary.LittleEndian.Uint32(b[12:]); sum != kd.Checksum(p.Payload) {
			return 0, kd.Packet{}, fmt.Errorf("%w: checksum %#08x does not match the payload's %#08x", ErrPacket, sum, kd.Checksum(p.Payload))
		}
		return KindData, p, nil
	}
	return 0, kd.Packet{}, fmt.Errorf("%w: unknown leader %#08x", ErrPacket, leader)
}
