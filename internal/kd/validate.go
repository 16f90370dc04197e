package kd

import (
	"encoding/binary"
	"fmt"
)

// DBGKD_CONTROL_REQUEST (12 bytes: ApiNumber u32, then a union of two u32:
// the hardware breakpoint number and Available/Released) and its API
// numbers. The kernel sends one to ask the debugger for a hardware
// breakpoint register and waits for the debugger's CONTROL_REQUEST reply.
const (
	ControlRequestSize                   = 12
	APIRequestHardwareBp       APINumber = 0x4300
	APIReleaseHardwareBp       APINumber = 0x4301
	minFileIOAPI, maxFileIOAPI           = APICreateFile, APICloseFile
)

// HostPacketError says why a packet is not one a debugger may send to a
// target.
type HostPacketError struct {
	Type   PacketType
	Length int
	Reason string
}

func (e *HostPacketError) Error() string {
	return fmt.Sprintf("a %s packet (type %d, %d bytes) %s", e.Type, uint16(e.Type), e.Length, e.Reason)
}

// CheckHostPacket reports whether a debugger may send a data packet of type
// t with payload to a target: a manipulate request (at least the 56-byte
// DBGKD_MANIPULATE_STATE64), the answer to a DbgPrompt (DEBUG_IO GetString),
// the answer to a FILE_IO request, or the answer to a CONTROL_REQUEST
// (hardware breakpoint request or release), within PACKET_MAX_SIZE. Every
// other type is the target's to send (state changes, prints, traces), a
// control packet the link layer sends itself (ACK, RESEND, RESET), or no
// packet at all (UNUSED, POLL_BREAKIN, anything from TypeMax on). A
// refusal is a *HostPacketError.
func CheckHostPacket(t PacketType, payload []byte) error {
	bad := func(reason string) error {
		return &HostPacketError{Type: t, Length: len(payload), Reason: reason}
	}
	if len(payload) > MaxPayload {
		return bad(fmt.Sprintf("is longer than the protocol's %d bytes", MaxPayload))
	}
	api := func() APINumber { return APINumber(binary.LittleEndian.Uint32(payload)) }
	switch t {
	case TypeStateManipulate:
		if len(payload) < ManipulateSize {
			return bad(fmt.Sprintf("is shorter than DBGKD_MANIPULATE_STATE64 (%d bytes)", ManipulateSize))
		}
		return nil
	case TypeDebugIO:
		if len(payload) < DebugIOSize {
			return bad(fmt.Sprintf("is shorter than DBGKD_DEBUG_IO (%d bytes)", DebugIOSize))
		}
		if a := api(); a != APIGetString {
			return bad(fmt.Sprintf("carries %v; a debugger sends DEBUG_IO only to answer a prompt (GetString)", a))
		}
		return nil
	case TypeFileIO:
		if len(payload) < FileIOSize {
			return bad(fmt.Sprintf("is shorter than DBGKD_FILE_IO (%d bytes)", FileIOSize))
		}
		if a := api(); a < minFileIOAPI || a > maxFileIOAPI {
			return bad(fmt.Sprintf("carries API %#x, not a FILE_IO answer", uint32(a)))
		}
		return nil
	case TypeControlRequest:
		if len(payload) < ControlRequestSize {
			return bad(fmt.Sprintf("is shorter than DBGKD_CONTROL_REQUEST (%d bytes)", ControlRequestSize))
		}
		if a := api(); a != APIRequestHardwareBp && a != APIReleaseHardwareBp {
			return bad(fmt.Sprintf("carries API %#x, not a hardware breakpoint answer", uint32(a)))
		}
		return nil
	case TypeAcknowledge, TypeResend, TypeReset:
		return bad("is a control packet, which the link layer sends itself")
	case TypeStateChange32, TypeStateChange64, TypeTraceIO:
		return bad("only ever goes from the target to the debugger")
	case TypeUnused, TypePollBreakIn:
		return bad("is never sent on a KDCOM link")
	}
	return bad(fmt.Sprintf("has an unknown type (the protocol's types end at %d)", uint16(TypeMax)-1))
}
