package kd

import (
	"encoding/binary"
	"fmt"
)

// VersionSize is the size of DBGKD_GET_VERSION64.
const VersionSize = 40

// Version is DBGKD_GET_VERSION64, the body of the target's GetVersion reply
// (it sits in the manipulate union at payload offset 16).
//
// Layout (offsets from the start of the structure):
//
//	 0 u16 MajorVersion   2 u16 MinorVersion    4 u8 ProtocolVersion
//	 5 u8  KdSecondaryVersion                    6 u16 Flags
//	 8 u16 MachineType   10 u8 MaxPacketType    11 u8 MaxStateChange
//	12 u8  MaxManipulate 13 u8 Simulation       14 u16 Unused
//	16 u64 KernBase      24 u64 PsLoadedModuleList
//	32 u64 DebuggerDataList
type Version struct {
	MajorVersion       uint16 // high byte: VersionMajor* type; low byte 0xF free / 0xC checked build
	MinorVersion       uint16 // OS build number (9600 = Windows 8.1)
	ProtocolVersion    uint8  // ProtocolVersion2 (6) for the 240-byte state change
	KdSecondaryVersion uint8  // AMD64: SecondaryVersionAMD64Context (2)
	Flags              uint16 // VersionFlag* bits
	MachineType        uint16 // Machine* (PE machine code)
	MaxPacketType      uint8  // uint8(TypeMax) = 12
	MaxStateChange     uint8  // StateMax − StateException = 3
	MaxManipulate      uint8  // APIMaxManipulate − APIMinManipulate = 0x31
	Simulation         uint8  // 0 none, 1 EXDI
	Unused             uint16
	KernBase           uint64 // kernel image base
	PsLoadedModuleList uint64 // address of the loaded-module list head
	DebuggerDataList   uint64 // address of the list head whose Flink is the KDBG block
}

func (v *Version) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{
		{0, &v.MajorVersion}, {2, &v.MinorVersion}, {4, &v.ProtocolVersion}, {5, &v.KdSecondaryVersion},
		{6, &v.Flags}, {8, &v.MachineType}, {10, &v.MaxPacketType}, {11, &v.MaxStateChange},
		{12, &v.MaxManipulate}, {13, &v.Simulation}, {14, &v.Unused},
		{16, &v.KernBase}, {24, &v.PsLoadedModuleList}, {32, &v.DebuggerDataList},
	})
}

// DBGKD_GET_VERSION64 Flags bits.
const (
	VersionFlagMP         uint16 = 0x01 // multiprocessor kernel
	VersionFlagData       uint16 = 0x02 // DebuggerDataList is valid
	VersionFlagPtr64      uint16 = 0x04 // 64-bit pointers
	VersionFlagNoMM       uint16 = 0x08 // no memory manager
	VersionFlagHSS        uint16 = 0x10 // hardware stepping support
	VersionFlagPartitions uint16 = 0x20 // multiple OS partitions
)

// MachineType values (PE machine codes).
const (
	MachineI386  uint16 = 0x014C
	MachineARM   uint16 = 0x01C0
	MachineAMD64 uint16 = 0x8664
	MachineARM64 uint16 = 0xAA64
)

// Protocol and secondary versions.
const (
	ProtocolVersion1             uint8 = 5 // DBGKD_64BIT_PROTOCOL_VERSION1
	ProtocolVersion2             uint8 = 6 // DBGKD_64BIT_PROTOCOL_VERSION2 (240-byte state change)
	SecondaryVersionAMD64Context uint8 = 2 // current AMD64 CONTEXT layout
)

// Major types: the high byte of MajorVersion (DBGKD_MAJOR_TYPES).
const (
	VersionMajorNT uint8 = iota
	VersionMajorXBox
	VersionMajorBig
	VersionMajorExdi
	VersionMajorNTBD
	VersionMajorEFI
	VersionMajorTNT
	VersionMajorSingularity
	VersionMajorHypervisor
	VersionMajorMidori
)

// DecodeVersion parses a DBGKD_GET_VERSION64 from the first VersionSize bytes
// of b. It fails with an error wrapping ErrPayloadTooShort when b is shorter.
func DecodeVersion(b []byte) (v Version, err error) {
	_, err = decodeFixed(b, "DBGKD_GET_VERSION64", VersionSize, v.wire)
	return v, err
}

// Append appends the 40-byte encoding of v to dst.
func (v *Version) Append(dst []byte) []byte { return appendFixed(dst, VersionSize, nil, v.wire) }

// Encode returns the 40-byte encoding of v.
func (v *Version) Encode() []byte { return v.Append(make([]byte, 0, VersionSize)) }

// String summarises v, e.g. "build 9600 free x64 protocol 6.2 flags 0x7".
func (v Version) String() string {
	kind := "free"
	if v.MajorVersion&0xFF == 0xC {
		kind = "checked"
	}
	var arch string
	switch v.MachineType {
	case MachineAMD64:
		arch = "x64"
	case MachineI386:
		arch = "x86"
	case MachineARM64:
		arch = "arm64"
	case MachineARM:
		arch = "arm"
	default:
		arch = fmt.Sprintf("machine 0x%04X", v.MachineType)
	}
	return fmt.Sprintf("build %d %s %s protocol %d.%d flags 0x%X",
		v.MinorVersion, kind, arch, v.ProtocolVersion, v.KdSecondaryVersion, v.Flags)
}

// KDDEBUGGER_DATA64 (the "KDBG" block, docs/kd-protocol.md §5.1): offsets from the
// start of the block. Debuggers read it with ReadVirtualMemory at the address
// in the Flink of GetVersion's DebuggerDataList.
const (
	DebuggerDataOffList                = 0x000 // LIST_ENTRY64 {Flink, Blink}
	DebuggerDataOffOwnerTag            = 0x010 // u32 "KDBG"
	DebuggerDataOffSize                = 0x014 // u32 block size
	DebuggerDataOffKernBase            = 0x018 // u64
	DebuggerDataOffPaeEnabled          = 0x036 // u16 bit-field word; bit 0 = PaeEnabled
	DebuggerDataOffPsLoadedModuleList  = 0x048 // u64, same as GetVersion's
	DebuggerDataOffPsActiveProcessHead = 0x050 // u64
	DebuggerDataOffCmNtCSDVersion      = 0x268 // u64 pointer to a u32; bits 8–15 = service pack

	// DebuggerDataTag is OwnerTag: the bytes "KDBG" read as a little-endian u32.
	DebuggerDataTag uint32 = 0x4742444B
	// DebuggerDataSize is the Size recent x64 kernels report.
	DebuggerDataSize = 0x368
	// debuggerDataMin is the smallest block that holds every field above.
	debuggerDataMin = DebuggerDataOffCmNtCSDVersion + 8
	// debuggerDataMaxBuild bounds the buffer BuildDebuggerData allocates.
	debuggerDataMaxBuild = 4096
)

// DebuggerData holds the KDDEBUGGER_DATA64 fields this project uses. Fields
// a consumer does not need may be zero; an empty list head points to itself.
type DebuggerData struct {
	ListFlink, ListBlink uint64 // links to the DebuggerDataList head
	Size                 uint32 // 0 means DebuggerDataSize
	KernBase             uint64
	PaeEnabled           bool
	PsLoadedModuleList   uint64
	PsActiveProcessHead  uint64
	CmNtCSDVersion       uint64 // address of a u32 holding the service pack in bits 8–15
}

// BuildDebuggerData lays out a KDDEBUGGER_DATA64 block as a simulated target
// serves it: OwnerTag "KDBG", Size d.Size (DebuggerDataSize when zero), the
// fields of d at their offsets and zero elsewhere. The result is Size bytes
// long, but at least 0x270 (enough for every field) and at most 4096 bytes
// whatever Size says. Callers may patch further fields in the returned slice.
func BuildDebuggerData(d DebuggerData) []byte {
	size := d.Size
	if size == 0 {
		size = DebuggerDataSize
	}
	n := min(max(int(size), debuggerDataMin), debuggerDataMaxBuild)
	b := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint64(b[DebuggerDataOffList:], d.ListFlink)
	le.PutUint64(b[DebuggerDataOffList+8:], d.ListBlink)
	le.PutUint32(b[DebuggerDataOffOwnerTag:], DebuggerDataTag)
	le.PutUint32(b[DebuggerDataOffSize:], size)
	le.PutUint64(b[DebuggerDataOffKernBase:], d.KernBase)
	if d.PaeEnabled {
		le.PutUint16(b[DebuggerDataOffPaeEnabled:], 1)
	}
	le.PutUint64(b[DebuggerDataOffPsLoadedModuleList:], d.PsLoadedModuleList)
	le.PutUint64(b[DebuggerDataOffPsActiveProcessHead:], d.PsActiveProcessHead)
	le.PutUint64(b[DebuggerDataOffCmNtCSDVersion:], d.CmNtCSDVersion)
	return b
}

// DecodeDebuggerData parses the fields of DebuggerData from a KDDEBUGGER_DATA64
// block read from a target. It fails if b is shorter than 0x270 bytes or the
// OwnerTag is not "KDBG" (the address read was not the debugger data block).
func DecodeDebuggerData(b []byte) (DebuggerData, error) {
	var d DebuggerData
	if len(b) < debuggerDataMin {
		return d, shortPayload("KDDEBUGGER_DATA64", len(b), debuggerDataMin)
	}
	le := binary.LittleEndian
	if tag := le.Uint32(b[DebuggerDataOffOwnerTag:]); tag != DebuggerDataTag {
		return d, fmt.Errorf("kd: debugger data block has owner tag 0x%08X, want 0x%08X (\"KDBG\"); the DebuggerDataList address is wrong or the memory is not paged in", tag, DebuggerDataTag)
	}
	d.ListFlink = le.Uint64(b[DebuggerDataOffList:])
	d.ListBlink = le.Uint64(b[DebuggerDataOffList+8:])
	d.Size = le.Uint32(b[DebuggerDataOffSize:])
	d.KernBase = le.Uint64(b[DebuggerDataOffKernBase:])
	d.PaeEnabled = le.Uint16(b[DebuggerDataOffPaeEnabled:])&1 != 0
	d.PsLoadedModuleList = le.Uint64(b[DebuggerDataOffPsLoadedModuleList:])
	d.PsActiveProcessHead = le.Uint64(b[DebuggerDataOffPsActiveProcessHead:])
	d.CmNtCSDVersion = le.Uint64(b[DebuggerDataOffCmNtCSDVersion:])
	return d, nil
}
