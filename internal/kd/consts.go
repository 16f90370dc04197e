// Package kd implements the Windows kernel-debugger serial protocol (KDCOM):
// the packet codec, the typed payload structures (DBGKD_*), and a link layer
// that plays either end of a debug link (host = debugger, target = kernel).
//
// Every multi-byte field on the wire is little-endian.
package kd

// Packet leaders and framing bytes.
const (
	DataLeader      uint32 = 0x30303030 // "0000": starts a data packet
	ControlLeader   uint32 = 0x69696969 // "iiii": starts a control packet
	DataLeaderByte  byte   = 0x30       // one byte of DataLeader
	CtrlLeaderByte  byte   = 0x69       // one byte of ControlLeader
	TrailingByte    byte   = 0xAA       // ends every data packet (not counted, not summed)
	BreakInByte     byte   = 0x62       // 'b': break-in request, sent outside any packet
	HeaderSize             = 16         // leader(4) type(2) count(2) id(4) checksum(4)
	MaxPayload             = 4000       // largest ByteCount accepted (PACKET_MAX_SIZE)
	MaxPacketSize          = HeaderSize + MaxPayload + 1
	InitialPacketID uint32 = 0x80800000 // first packet id of a stream
	SyncPacketID    uint32 = 0x00000800 // OR-ed into an id: "my id stream restarted"
)

// PacketType is the 16-bit type field of a KD packet header.
type PacketType uint16

// Packet types.
const (
	TypeUnused          PacketType = 0  // not used in KDCOM
	TypeStateChange32   PacketType = 1  // legacy 32-bit state change
	TypeStateManipulate PacketType = 2  // DBGKD_MANIPULATE_STATE64 request/reply
	TypeDebugIO         PacketType = 3  // DBGKD_DEBUG_IO (DbgPrint, DbgPrompt)
	TypeAcknowledge     PacketType = 4  // control: packet received
	TypeResend          PacketType = 5  // control: send your last data packet again
	TypeReset           PacketType = 6  // control: restart both id streams
	TypeStateChange64   PacketType = 7  // DBGKD_ANY_WAIT_STATE_CHANGE
	TypePollBreakIn     PacketType = 8  // pseudo type; never framed
	TypeTraceIO         PacketType = 9  // DBGKD_TRACE_IO
	TypeControlRequest  PacketType = 10 // DBGKD_CONTROL_REQUEST
	TypeFileIO          PacketType = 11 // DBGKD_FILE_IO
	TypeMax             PacketType = 12 // one past the last type (GetVersion.MaxPacketType)
)

// IsControl reports whether t is a control packet type (ACK, RESEND, RESET).
func (t PacketType) IsControl() bool {
	return t == TypeAcknowledge || t == TypeResend || t == TypeReset
}

func (t PacketType) String() string {
	switch t {
	case TypeUnused:
		return "UNUSED"
	case TypeStateChange32:
		return "STATE_CHANGE32"
	case TypeStateManipulate:
		return "STATE_MANIPULATE"
	case TypeDebugIO:
		return "DEBUG_IO"
	case TypeAcknowledge:
		return "ACKNOWLEDGE"
	case TypeResend:
		return "RESEND"
	case TypeReset:
		return "RESET"
	case TypeStateChange64:
		return "STATE_CHANGE64"
	case TypePollBreakIn:
		return "POLL_BREAKIN"
	case TypeTraceIO:
		return "TRACE_IO"
	case TypeControlRequest:
		return "CONTROL_REQUEST"
	case TypeFileIO:
		return "FILE_IO"
	}
	return "TYPE_" + itoa(uint32(t))
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// NTSTATUS values used by the protocol.
const (
	StatusSuccess          uint32 = 0x00000000
	StatusUnsuccessful     uint32 = 0xC0000001
	StatusNoSuchFile       uint32 = 0xC000000F
	StatusAccessViolation  uint32 = 0xC0000005
	StatusBreakpoint       uint32 = 0x80000003
	StatusSingleStep       uint32 = 0x80000004
	DbgContinue            uint32 = 0x00010002
	DbgExceptionHandled    uint32 = 0x00010001
	DbgExceptionNotHandled uint32 = 0x80010001
)
