package kd

import (
	"bytes"
	"fmt"
)

// StateChangeSize is the size of DBGKD_ANY_WAIT_STATE_CHANGE (protocol 6),
// the fixed part of a STATE_CHANGE64 payload, on x64 and x86 alike.
const StateChangeSize = 240

// stateControlOff is where the 48-byte control report starts inside
// DBGKD_ANY_WAIT_STATE_CHANGE (the 160-byte union starts at 32).
const stateControlOff = 192

// MaxInstructionStream is DBGKD_MAXSTREAM, the instruction bytes a control
// report carries.
const MaxInstructionStream = 16

// ControlReport ReportFlags bits.
const (
	ReportIncludesSegs uint16 = 0x1 // SegCs..SegFs are valid
	ReportStandardCS   uint16 = 0x2 // CS is the standard kernel/user selector
)

// ExceptionRecord64 is the exception union member (DBGKM_EXCEPTION64: an
// EXCEPTION_RECORD64 plus FirstChance), at payload offsets 32..191.
type ExceptionRecord64 struct {
	ExceptionCode        uint32     // @32, e.g. StatusBreakpoint
	ExceptionFlags       uint32     // @36
	ExceptionRecord      uint64     // @40: chained record address
	ExceptionAddress     uint64     // @48
	NumberParameters     uint32     // @56 (@60 is padding)
	ExceptionInformation [15]uint64 // @64
	FirstChance          uint32     // @184: 1 = first chance (@188 is padding)
}

// LoadSymbols64 is the DBGKD_LOAD_SYMBOLS64 union member. The image path
// follows the 240-byte structure as extra data, NUL-terminated.
type LoadSymbols64 struct {
	PathNameLength uint32 // @32: path length including the NUL
	BaseOfDll      uint64 // @40
	ProcessId      uint64 // @48
	CheckSum       uint32 // @56
	SizeOfImage    uint32 // @60
	UnloadSymbols  bool   // @64 (one byte)
}

// CommandString64 is the DBGKD_COMMAND_STRING union member. Extra data is
// a name and a command, each NUL-terminated.
type CommandString64 struct {
	Flags     uint32    // @32
	Reserved1 uint32    // @36
	Reserved2 [7]uint64 // @40
}

// ControlReportX64 is the AMD64 DBGKD_CONTROL_REPORT at payload offset 192.
// It covers all 48 bytes, so an x86 report (same offset, other layout)
// still survives a decode/encode round trip byte for byte.
type ControlReportX64 struct {
	Dr6               uint64                     // @192
	Dr7               uint64                     // @200
	EFlags            uint32                     // @208
	InstructionCount  uint16                     // @212: valid bytes in InstructionStream
	ReportFlags       uint16                     // @214: Report* bits
	InstructionStream [MaxInstructionStream]byte // @216: bytes at the PC, breakpoints removed
	SegCs             uint16                     // @232
	SegDs             uint16                     // @234
	SegEs             uint16                     // @236
	SegFs             uint16                     // @238
}

// Instructions returns the valid part of the instruction stream.
func (c *ControlReportX64) Instructions() []byte {
	n := min(int(c.InstructionCount), MaxInstructionStream)
	return c.InstructionStream[:n]
}

// StateChange is DBGKD_ANY_WAIT_STATE_CHANGE plus the extra data that
// follows it in a STATE_CHANGE64 payload: the target's report that it has
// stopped (exception, image load/unload, command string).
//
// Only the union member selected by NewState (ignoring StateAlternate) is
// decoded and encoded; the other two stay zero. Padding bytes (@12, @60,
// @188, and the union bytes a member does not cover) are encoded as zero.
type StateChange struct {
	NewState         uint32 // @0: StateException, StateLoadSymbols, StateCommandString
	ProcessorLevel   uint16 // @4
	Processor        uint16 // @6: reporting CPU
	NumberProcessors uint32 // @8
	Thread           uint64 // @16: current KTHREAD
	ProgramCounter   uint64 // @24

	Exception     ExceptionRecord64 // union @32 when NewState is StateException
	LoadSymbols   LoadSymbols64     // union @32 when NewState is StateLoadSymbols
	CommandString CommandString64   // union @32 when NewState is StateCommandString

	Control ControlReportX64 // @192
	Extra   []byte           // data after the 240-byte structure
}

// wire moves the structure's fields (offsets from the start of the
// payload): the header, the control report, then the union member that
// NewState selects (ignoring StateAlternate; none for a state this package
// does not know), once NewState itself has been read.
func (s *StateChange) wire(b []byte, enc bool) {
	c := &s.Control
	moveFields(b, 0, enc, []wireField{
		{0, &s.NewState}, {4, &s.ProcessorLevel}, {6, &s.Processor}, {8, &s.NumberProcessors},
		{16, &s.Thread}, {24, &s.ProgramCounter},
		{stateControlOff, &c.Dr6}, {200, &c.Dr7}, {208, &c.EFlags}, {212, &c.InstructionCount}, {214, &c.ReportFlags},
		{216, c.InstructionStream[:]}, {232, &c.SegCs}, {234, &c.SegDs}, {236, &c.SegEs}, {238, &c.SegFs},
	})
	switch s.NewState &^ StateAlternate {
	case StateException:
		e := &s.Exception
		moveFields(b, 0, enc, []wireField{{32, &e.ExceptionCode}, {36, &e.ExceptionFlags}, {40, &e.ExceptionRecord},
			{48, &e.ExceptionAddress}, {56, &e.NumberParameters}, {64, e.ExceptionInformation[:]}, {184, &e.FirstChance}})
	case StateLoadSymbols:
		l := &s.LoadSymbols
		moveFields(b, 0, enc, []wireField{{32, &l.PathNameLength}, {40, &l.BaseOfDll}, {48, &l.ProcessId},
			{56, &l.CheckSum}, {60, &l.SizeOfImage}, {64, &l.UnloadSymbols}})
	case StateCommandString:
		cs := &s.CommandString
		moveFields(b, 0, enc, []wireField{{32, &cs.Flags}, {36, &cs.Reserved1}, {40, cs.Reserved2[:]}})
	}
}

// DecodeStateChange parses a STATE_CHANGE64 payload. It fails with an error
// wrapping ErrPayloadTooShort when payload is shorter than StateChangeSize.
// Extra aliases payload (no copy) and is nil when there is no extra data.
func DecodeStateChange(payload []byte) (s StateChange, err error) {
	s.Extra, err = decodeFixed(payload, "DBGKD_ANY_WAIT_STATE_CHANGE", StateChangeSize, s.wire)
	return s, err
}

// Append appends the 240-byte structure followed by Extra to dst.
func (s *StateChange) Append(dst []byte) []byte {
	return appendFixed(dst, StateChangeSize, s.Extra, s.wire)
}

// Size returns the encoded length: StateChangeSize + len(Extra).
func (s *StateChange) Size() int { return StateChangeSize + len(s.Extra) }

// String summarises s for logs.
func (s StateChange) String() string {
	head := fmt.Sprintf("cpu %d/%d pc=%#x", s.Processor, s.NumberProcessors, s.ProgramCounter)
	switch s.NewState &^ StateAlternate {
	case StateException:
		chance := "second"
		if s.Exception.FirstChance != 0 {
			chance = "first"
		}
		return fmt.Sprintf("exception 0x%08X (%s chance) at %#x, %s",
			s.Exception.ExceptionCode, chance, s.Exception.ExceptionAddress, head)
	case StateLoadSymbols:
		verb := "load"
		if s.LoadSymbols.UnloadSymbols {
			verb = "unload"
		}
		return fmt.Sprintf("%s symbols %q base=%#x, %s", verb, s.PathName(), s.LoadSymbols.BaseOfDll, head)
	case StateCommandString:
		name, cmd := s.CommandStrings()
		return fmt.Sprintf("command string %q %q, %s", name, cmd, head)
	}
	return fmt.Sprintf("state %v, %s", APINumber(s.NewState), head)
}

// cString returns b up to (not including) its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// PathName returns the image path of a LoadSymbols state change: the extra
// data up to PathNameLength bytes and the first NUL.
func (s *StateChange) PathName() string {
	b := s.Extra
	if n := int(s.LoadSymbols.PathNameLength); n < len(b) {
		b = b[:n]
	}
	return cString(b)
}

// SetPathName sets Extra to path plus a NUL and PathNameLength to match.
func (s *StateChange) SetPathName(path string) {
	s.Extra = append([]byte(path), 0)
	s.LoadSymbols.PathNameLength = uint32(len(s.Extra))
}

// CommandStrings returns the name and command of a CommandString state
// change (two NUL-terminated strings in the extra data).
func (s *StateChange) CommandStrings() (name, command string) {
	name = cString(s.Extra)
	if len(name) < len(s.Extra) {
		command = cString(s.Extra[len(name)+1:])
	}
	return name, command
}
