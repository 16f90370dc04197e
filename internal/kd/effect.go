package kd

import "encoding/binary"

// Effect says what a packet a debugger sends may do to the state of a
// halted target, as far as anything that keeps copies of that state is
// concerned: kdclient's halted-target cache and kdsrv's read-ahead both
// decide what to keep and what to drop with DebuggerEffect, so the two
// follow one set of rules.
type Effect uint8

const (
	// EffectChanges: the packet may change memory, registers, breakpoints
	// (which are memory writes), device state or whether the target runs
	// — or we do not know that it cannot. Everything kept about the
	// target's memory and registers must be dropped.
	EffectChanges Effect = iota
	// EffectPureRead: a read whose answer depends only on state that
	// nothing but the debugger changes while the target is halted, and
	// that has no side effect of its own: ReadVirtualMemory, GetVersion,
	// GetContext, GetContextEx and ReadControlSpace. Its answer may be kept
	// until the next EffectChanges packet or state change.
	EffectPureRead
	// EffectHarmlessRead: a read with no side effect whose answer is not
	// kept (QueryMemory, SearchMemory). It changes nothing.
	EffectHarmlessRead
)

func (e Effect) String() string {
	switch e {
	case EffectPureRead:
		return "pure read"
	case EffectHarmlessRead:
		return "harmless read"
	}
	return "changes"
}

// DebuggerEffect classifies a KD packet a debugger sends to a target.
// Anything that is not a well-formed manipulate request known to be a
// side-effect-free read is EffectChanges: where a rule is uncertain, the
// copies go. Reads that are not kept include those that can have side
// effects on devices or that the debugger asked to be uncached: I/O space,
// bus data, MSRs and physical memory (docs/kd-protocol.md §3).
func DebuggerEffect(t PacketType, payload []byte) Effect {
	if t != TypeStateManipulate || len(payload) < ManipulateSize {
		return EffectChanges
	}
	switch APINumber(binary.LittleEndian.Uint32(payload)) {
	case APIReadVirtualMemory, APIGetVersion, APIGetContext, APIGetContextEx, APIReadControlSpace:
		return EffectPureRead
	case APIQueryMemory, APISearchMemory:
		return EffectHarmlessRead
	}
	return EffectChanges
}
