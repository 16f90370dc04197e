package kd

import (
	"slices"
	"strings"
)

// ContextX64Size is the size of the AMD64 CONTEXT record (0x4D0).
const ContextX64Size = 1232

// AMD64 CONTEXT ContextFlags values.
const (
	ContextAMD64          uint32 = 0x00100000
	ContextControl        uint32 = ContextAMD64 | 0x01                                                                              // SegSs, Rsp, SegCs, Rip, EFlags
	ContextInteger        uint32 = ContextAMD64 | 0x02                                                                              // Rax..R15
	ContextSegments       uint32 = ContextAMD64 | 0x04                                                                              // SegDs, SegEs, SegFs, SegGs
	ContextFloatingPoint  uint32 = ContextAMD64 | 0x08                                                                              // FltSave, MxCsr
	ContextDebugRegisters uint32 = ContextAMD64 | 0x10                                                                              // Dr0..Dr3, Dr6, Dr7
	ContextFull           uint32 = ContextControl | ContextInteger | ContextFloatingPoint                                           // 0x10000B
	ContextAll            uint32 = ContextControl | ContextInteger | ContextSegments | ContextFloatingPoint | ContextDebugRegisters // 0x10001F
)

// Offsets of selected fields in the AMD64 CONTEXT (docs/kd-protocol.md §7).
const (
	ContextX64OffContextFlags  = 0x030
	ContextX64OffSegCs         = 0x038
	ContextX64OffEFlags        = 0x044
	ContextX64OffDr0           = 0x048
	ContextX64OffRax           = 0x078
	ContextX64OffRip           = 0x0F8
	ContextX64OffFltSave       = 0x100
	ContextX64OffVector        = 0x300
	ContextX64OffVectorControl = 0x4A0
)

// ContextX64 is the AMD64 CONTEXT record, as carried after a GetContext
// reply and a SetContext request, and sliced by GetContextEx/SetContextEx.
// Field order is the wire order; offsets are in the comments.
type ContextX64 struct {
	P1Home, P2Home, P3Home, P4Home, P5Home, P6Home uint64 // 0x000

	ContextFlags uint32 // 0x030
	MxCsr        uint32 // 0x034

	SegCs, SegDs, SegEs, SegFs, SegGs, SegSs uint16 // 0x038..0x042
	EFlags                                   uint32 // 0x044

	Dr0, Dr1, Dr2, Dr3, Dr6, Dr7 uint64 // 0x048..0x070

	Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi uint64 // 0x078..0x0B0
	R8, R9, R10, R11, R12, R13, R14, R15   uint64 // 0x0B8..0x0F0
	Rip                                    uint64 // 0x0F8

	FltSave        [512]byte    // 0x100: XMM_SAVE_AREA32 (Xmm0 at +0xA0)
	VectorRegister [26][16]byte // 0x300
	VectorControl  uint64       // 0x4A0
	DebugControl   uint64       // 0x4A8

	LastBranchToRip, LastBranchFromRip       uint64 // 0x4B0, 0x4B8
	LastExceptionToRip, LastExceptionFromRip uint64 // 0x4C0, 0x4C8
}

func (c *ContextX64) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{
		{0x000, c.homes()}, {ContextX64OffContextFlags, &c.ContextFlags}, {0x034, &c.MxCsr},
		{ContextX64OffSegCs, c.segs()}, {ContextX64OffEFlags, &c.EFlags}, {ContextX64OffDr0, c.drs()},
		{ContextX64OffRax, c.gprs()}, {ContextX64OffFltSave, c.FltSave[:]},
		{ContextX64OffVector, c.VectorRegister[:]}, {ContextX64OffVectorControl, c.tail()},
	})
}

// gprs returns pointers to Rax..Rip in wire order: the block 0x078..0x100
// is 17 contiguous u64s.
func (c *ContextX64) gprs() []*uint64 {
	return []*uint64{
		&c.Rax, &c.Rcx, &c.Rdx, &c.Rbx, &c.Rsp, &c.Rbp, &c.Rsi, &c.Rdi,
		&c.R8, &c.R9, &c.R10, &c.R11, &c.R12, &c.R13, &c.R14, &c.R15, &c.Rip,
	}
}

func (c *ContextX64) homes() []*uint64 {
	return []*uint64{&c.P1Home, &c.P2Home, &c.P3Home, &c.P4Home, &c.P5Home, &c.P6Home}
}

func (c *ContextX64) segs() []*uint16 {
	return []*uint16{&c.SegCs, &c.SegDs, &c.SegEs, &c.SegFs, &c.SegGs, &c.SegSs}
}

func (c *ContextX64) drs() []*uint64 {
	return []*uint64{&c.Dr0, &c.Dr1, &c.Dr2, &c.Dr3, &c.Dr6, &c.Dr7}
}

func (c *ContextX64) tail() []*uint64 {
	return []*uint64{
		&c.VectorControl, &c.DebugControl,
		&c.LastBranchToRip, &c.LastBranchFromRip,
		&c.LastExceptionToRip, &c.LastExceptionFromRip,
	}
}

// DecodeContextX64 parses an AMD64 CONTEXT from the first ContextX64Size
// bytes of b (bytes beyond are ignored). It fails with an error wrapping
// ErrPayloadTooShort when b is shorter.
func DecodeContextX64(b []byte) (c ContextX64, err error) {
	_, err = decodeFixed(b, "AMD64 CONTEXT", ContextX64Size, c.wire)
	return c, err
}

// Append appends the 1232-byte encoding of c to dst.
func (c *ContextX64) Append(dst []byte) []byte { return appendFixed(dst, ContextX64Size, nil, c.wire) }

// Encode returns the 1232-byte encoding of c.
func (c *ContextX64) Encode() []byte { return c.Append(make([]byte, 0, ContextX64Size)) }

// Xmm returns XMM register i (0..15) from FltSave, or nil if i is out of range.
func (c *ContextX64) Xmm(i int) []byte {
	if i < 0 || i > 15 {
		return nil
	}
	off := 0xA0 + 16*i
	return c.FltSave[off : off+16]
}

// NamedReg is one register for display: its WinDbg name, value and width in
// bits (64 general, 32 efl, 16 segment).
type NamedReg struct {
	Name  string
	Value uint64
	Bits  int
}

// regNames lists the registers of Registers in WinDbg "r" order.
var regNames = [...]string{
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rip", "rsp", "rbp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
	"efl", "cs", "ss", "ds", "es", "fs", "gs",
}

// Registers lists the general registers in WinDbg "r" order: rax rbx rcx
// rdx rsi rdi rip rsp rbp r8..r15 efl cs ss ds es fs gs.
func (c *ContextX64) Registers() []NamedReg {
	out := make([]NamedReg, 0, len(regNames))
	for _, n := range regNames {
		v, bits, _ := c.reg(n)
		out = append(out, NamedReg{Name: n, Value: v, Bits: bits})
	}
	return out
}

// reg returns the value and width in bits of the lower-case register name.
func (c *ContextX64) reg(name string) (uint64, int, bool) {
	if p := c.reg64(name); p != nil {
		return *p, 64, true
	}
	if name == "efl" || name == "eflags" {
		return uint64(c.EFlags), 32, true
	}
	if p := c.reg16(name); p != nil {
		return uint64(*p), 16, true
	}
	return 0, 0, false
}

// Register names in the wire order of gprs, drs and segs.
var (
	gprNames = [...]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"}
	drNames  = [...]string{"dr0", "dr1", "dr2", "dr3", "dr6", "dr7"}
	segNames = [...]string{"cs", "ds", "es", "fs", "gs", "ss"}
)

// reg64 returns the 64-bit register (general or debug) named name, or nil.
func (c *ContextX64) reg64(name string) *uint64 {
	if i := slices.Index(gprNames[:], name); i >= 0 {
		return c.gprs()[i]
	}
	if i := slices.Index(drNames[:], name); i >= 0 {
		return c.drs()[i]
	}
	return nil
}

// reg16 returns the segment register named name, or nil.
func (c *ContextX64) reg16(name string) *uint16 {
	if i := slices.Index(segNames[:], name); i >= 0 {
		return c.segs()[i]
	}
	return nil
}

// Register returns the value of the named register (case-insensitive:
// rax..r15, rip, efl/eflags, cs..gs, dr0..dr7) and whether the name is known.
func (c *ContextX64) Register(name string) (uint64, bool) {
	v, _, ok := c.reg(strings.ToLower(name))
	return v, ok
}

// SetRegister sets the named register (names as in Register); 32- and 16-bit
// registers keep the low bits of v. It reports whether the name is known.
func (c *ContextX64) SetRegister(name string, v uint64) bool {
	name = strings.ToLower(name)
	if p := c.reg64(name); p != nil {
		*p = v
		return true
	}
	if name == "efl" || name == "eflags" {
		c.EFlags = uint32(v)
		return true
	}
	if p := c.reg16(name); p != nil {
		*p = uint16(v)
		return true
	}
	return false
}
