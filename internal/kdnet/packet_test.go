package kdnet

import (
	"bytes"
	"errors"
	"testing"

	"kdsrv/internal/kd"
	"kdsrv/internal/testkit"
)

// KD packets decrypted from the captured Windows 8.1 KDNET session
// (docs/kd-protocol.md §8 V11): KDNET ids, no 0xAA trailer.
const (
	v11HostReset   = "69696969 0600 0000 00000080 00000000"
	v11TargetReset = "69696969 0600 0000 26090000 00000000"
	v11TargetAck   = "69696969 0400 0000 08000080 00000000"
	v11HostGetVer  = "30303030 0200 3800 00000080 a0070000 46310000 00000000 03010000 00000000" +
		"fc75d73f01000000 1000000000000000 a0b41a0000000000 0100000000000000 7a129feefe070000"
	v11TargetGetVerHeader = "30303030 0200 3800 28090000 1e120000"
	// The reply's payload is the one of docs/kd-protocol.md §8 V5.
	v5Payload = "46310000 0000 0000 00000000 00000000" +
		"0f00 8025 06 02 0700 6486 0c 03 31 00 0000" +
		"0080c16b02f8ffff d022ee6b02f8ffff f091ef6b02f8ffff"
)

func TestParsePacketCapture(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		wire string
		kind PacketKind
		typ  kd.PacketType
		id   uint32
		n    int // payload length
	}{
		{"host RESET", v11HostReset, KindControl, kd.TypeReset, 0x80000000, 0},
		{"target RESET keeps its id", v11TargetReset, KindControl, kd.TypeReset, 0x926, 0},
		{"target ACK echoes the exact id", v11TargetAck, KindControl, kd.TypeAcknowledge, 0x80000008, 0},
		{"host GetVersion with stale bytes", v11HostGetVer, KindData, kd.TypeStateManipulate, 0x80000000, 56},
		{"target GetVersion reply", v11TargetGetVerHeader + v5Payload, KindData, kd.TypeStateManipulate, 0x928, 56},
		{"break-in", "62", KindBreakIn, 0, 0, 0},
		{"pseudo packet", "00000000 0000 0000 26090000", KindPseudo, 0, 0x926, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testkit.Unhex(t, tt.wire)
			kind, p, err := ParsePacket(b)
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if kind != tt.kind || p.Type != tt.typ || p.ID != tt.id || len(p.Payload) != tt.n {
				t.Fatalf("got %s %s id %#x %d bytes; want %s %s id %#x %d bytes", kind, p.Type, p.ID, len(p.Payload), tt.kind, tt.typ, tt.id, tt.n)
			}
			// Packets re-encode byte for byte, checksum included.
			switch kind {
			case KindData, KindControl:
				if got := AppendPacket(nil, p); !bytes.Equal(got, b) {
					t.Errorf("AppendPacket = %x\nwant          %x", got, b)
				}
			case KindPseudo:
				if got := AppendPseudo(nil, p.ID); !bytes.Equal(got, b) {
					t.Errorf("AppendPseudo = %x, want %x", got, b)
				}
			}
		})
	}
}

func TestParsePacketRejects(t *testing.T) {
	t.Parallel()
	good := testkit.Unhex(t, v11HostGetVer)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:15]},
		{"lone other byte", []byte{0x61}},
		{"bad checksum", mod(func(b []byte) []byte { b[12]++; return b })},
		{"payload byte changed", mod(func(b []byte) []byte { b[20] ^= 1; return b })},
		{"count larger than datagram", mod(func(b []byte) []byte { b[6]++; return b })},
		{"count smaller than datagram", append(bytes.Clone(good), 0)},
		{"KDCOM trailer left on", append(bytes.Clone(good), kd.TrailingByte)},
		{"control type with data leader", mod(func(b []byte) []byte { b[4] = 4; return b })},
		{"type 0 with data leader", mod(func(b []byte) []byte { b[4] = 0; return b })},
		{"type past the last", mod(func(b []byte) []byte { b[4] = byte(kd.TypeMax); return b })},
		{"unknown leader", mod(func(b []byte) []byte { b[0] = 0x31; return b })},
		{"data type with control leader", testkit.Unhex(t, "69696969 0200 0000 00000080 00000000")},
		{"control packet with a count", testkit.Unhex(t, "69696969 0400 0100 00000080 00000000 00")},
		{"control packet with a tail", testkit.Unhex(t, "69696969 0400 0000 00000080 00000000 00")},
		{"pseudo with non-zero type", testkit.Unhex(t, "00000000 0100 0000 26090000")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if kind, p, err := ParsePacket(tt.b); !errors.Is(err, ErrPacket) {
				t.Fatalf("ParsePacket(%x) = %s %v, %v; want ErrPacket", tt.b, kind, p, err)
			}
		})
	}
	// An oversized count is refused before the datagram length is looked at.
	big := AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, Payload: make([]byte, kd.MaxPayload)})
	if _, _, err := ParsePacket(big); err != nil {
		t.Fatalf("a %d-byte payload is legal: %v", kd.MaxPayload, err)
	}
	big = append(big, 0)
	big[6], big[7] = byte((kd.MaxPayload+1)&0xff), byte((kd.MaxPayload+1)>>8)
	if _, _, err := ParsePacket(big); !errors.Is(err, ErrPacket) {
		t.Fatalf("byte count %d accepted", kd.MaxPayload+1)
	}
}

// FuzzParsePacket: ParsePacket never panics; what it accepts as a data
// packet re-encodes to the same bytes, a control packet too except for its
// checksum field (ignored on receipt, zero when sent), and a pseudo packet.
func FuzzParsePacket(f *testing.F) {
	for _, s := range []string{v11HostReset, v11TargetAck, v11HostGetVer, "62", "00000000 0000 0000 26090000"} {
		f.Add(testkit.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, p, err := ParsePacket(b)
		if err != nil {
			if kind != 0 || p.Payload != nil {
				t.Fatalf("error %v with a result %s %v", err, kind, p)
			}
			return
		}
		switch kind {
		case KindData:
			if got := AppendPacket(nil, p); !bytes.Equal(got, b) {
				t.Fatalf("re-encoded %x, parsed from %x", got, b)
			}
		case KindControl:
			if got := AppendPacket(nil, p); len(got) != len(b) || !bytes.Equal(got[:12], b[:12]) {
				t.Fatalf("re-encoded %x, parsed from %x", got, b)
			}
		case KindPseudo:
			if got := AppendPseudo(nil, p.ID); !bytes.Equal(got, b) {
				t.Fatalf("re-encoded pseudo %x, parsed from %x", got, b)
			}
		case KindBreakIn:
			if !bytes.Equal(b, []byte{kd.BreakInByte}) {
				t.Fatalf("break-in from %x", b)
			}
		default:
			t.Fatalf("unknown kind %d", kind)
		}
	})
}
