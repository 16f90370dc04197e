package kd

import (
	"errors"
	"fmt"
)

// ErrPayloadTooShort is wrapped by every payload decoder in this package when
// the payload is shorter than the fixed structure it must hold. Test for it
// with errors.Is.
var ErrPayloadTooShort = errors.New("kd: payload too short")

// shortPayload builds the error returned when a payload of got bytes cannot
// hold the named structure of need bytes.
func shortPayload(what string, got, need int) error {
	return fmt.Errorf("%w: %s needs at least %d bytes, got %d; the packet is truncated or of another type",
		ErrPayloadTooShort, what, need, got)
}

// ManipulateSize is the size of DBGKD_MANIPULATE_STATE64, the fixed part of a
// STATE_MANIPULATE payload. Extra data (memory, a CONTEXT) follows it.
const ManipulateSize = 56

// manipulateUnionOff is where the 40-byte union starts inside the structure.
const manipulateUnionOff = 16

// MaxManipulateData is the largest amount of extra data that fits after a
// DBGKD_MANIPULATE_STATE64 in one packet (MaxPayload − 56 = 3944); targets
// clamp memory transfers to it.
const MaxManipulateData = MaxPayload - ManipulateSize

// APINumber is the 32-bit ApiNumber (or NewState) field that selects the
// operation carried by a STATE_MANIPULATE, DEBUG_IO, TRACE_IO, FILE_IO or
// STATE_CHANGE payload.
type APINumber uint32

// DBGKD_MANIPULATE_STATE64 API numbers (docs/kd-protocol.md §3.1).
const (
	APIReadVirtualMemory            APINumber = 0x3130
	APIWriteVirtualMemory           APINumber = 0x3131
	APIGetContext                   APINumber = 0x3132
	APISetContext                   APINumber = 0x3133
	APIWriteBreakPoint              APINumber = 0x3134
	APIRestoreBreakPoint            APINumber = 0x3135
	APIContinue                     APINumber = 0x3136
	APIReadControlSpace             APINumber = 0x3137
	APIWriteControlSpace            APINumber = 0x3138
	APIReadIOSpace                  APINumber = 0x3139
	APIWriteIOSpace                 APINumber = 0x313A
	APIReboot                       APINumber = 0x313B
	APIContinue2                    APINumber = 0x313C
	APIReadPhysicalMemory           APINumber = 0x313D
	APIWritePhysicalMemory          APINumber = 0x313E
	APIQuerySpecialCalls            APINumber = 0x313F
	APISetSpecialCall               APINumber = 0x3140
	APIClearSpecialCalls            APINumber = 0x3141
	APISetInternalBreakPoint        APINumber = 0x3142
	APIGetInternalBreakPoint        APINumber = 0x3143
	APIReadIOSpaceExtended          APINumber = 0x3144
	APIWriteIOSpaceExtended         APINumber = 0x3145
	APIGetVersion                   APINumber = 0x3146
	APIWriteBreakPointEx            APINumber = 0x3147
	APIRestoreBreakPointEx          APINumber = 0x3148
	APICauseBugCheck                APINumber = 0x3149
	APISwitchProcessor              APINumber = 0x3150
	APIPageIn                       APINumber = 0x3151 // obsolete
	APIReadMachineSpecificRegister  APINumber = 0x3152
	APIWriteMachineSpecificRegister APINumber = 0x3153
	APIOldVlm1                      APINumber = 0x3154
	APIOldVlm2                      APINumber = 0x3155
	APISearchMemory                 APINumber = 0x3156
	APIGetBusData                   APINumber = 0x3157
	APISetBusData                   APINumber = 0x3158
	APICheckLowMemory               APINumber = 0x3159
	APIClearAllInternalBreakpoints  APINumber = 0x315A
	APIFillMemory                   APINumber = 0x315B
	APIQueryMemory                  APINumber = 0x315C
	APISwitchPartition              APINumber = 0x315D
	APIWriteCustomBreakpoint        APINumber = 0x315E // Microsoft headers call it MidoriApi
	APIGetContextEx                 APINumber = 0x315F
	APISetContextEx                 APINumber = 0x3160
	APIMaxManipulate                APINumber = 0x3161 // one past the last public API

	// APIMinManipulate is the first manipulate API number; GetVersion's
	// MaxManipulate field counts from it.
	APIMinManipulate = APIReadVirtualMemory
)

// DBGKD_DEBUG_IO, DBGKD_TRACE_IO and DBGKD_FILE_IO API numbers (§3.1, §6).
const (
	APIPrintString APINumber = 0x3230 // DbgPrint text, target → host
	APIGetString   APINumber = 0x3231 // DbgPrompt: prompt out, reply in
	APIPrintTrace  APINumber = 0x3330 // trace bytes, target → host
	APICreateFile  APINumber = 0x3430
	APIReadFile    APINumber = 0x3431
	APIWriteFile   APINumber = 0x3432
	APICloseFile   APINumber = 0x3433
)

// NewState values of DBGKD_ANY_WAIT_STATE_CHANGE (§4). They are untyped so
// that they compare with StateChange.NewState (uint32) and convert to
// APINumber (for String) alike.
const (
	StateException     = 0x3030 // DbgKdExceptionStateChange
	StateLoadSymbols   = 0x3031 // DbgKdLoadSymbolsStateChange
	StateCommandString = 0x3032 // DbgKdCommandStringStateChange
	StateMax           = 0x3033 // one past the last state; GetVersion.MaxStateChange = 3

	// StateAlternate is OR-ed into NewState by the kernel for state changes
	// raised from an alternate source; decoders mask it off to pick the union.
	StateAlternate = 0x00010000
)

var apiNames = map[APINumber]string{
	APIReadVirtualMemory:            "ReadVirtualMemory",
	APIWriteVirtualMemory:           "WriteVirtualMemory",
	APIGetContext:                   "GetContext",
	APISetContext:                   "SetContext",
	APIWriteBreakPoint:              "WriteBreakPoint",
	APIRestoreBreakPoint:            "RestoreBreakPoint",
	APIContinue:                     "Continue",
	APIReadControlSpace:             "ReadControlSpace",
	APIWriteControlSpace:            "WriteControlSpace",
	APIReadIOSpace:                  "ReadIoSpace",
	APIWriteIOSpace:                 "WriteIoSpace",
	APIReboot:                       "Reboot",
	APIContinue2:                    "Continue2",
	APIReadPhysicalMemory:           "ReadPhysicalMemory",
	APIWritePhysicalMemory:          "WritePhysicalMemory",
	APIQuerySpecialCalls:            "QuerySpecialCalls",
	APISetSpecialCall:               "SetSpecialCall",
	APIClearSpecialCalls:            "ClearSpecialCalls",
	APISetInternalBreakPoint:        "SetInternalBreakPoint",
	APIGetInternalBreakPoint:        "GetInternalBreakPoint",
	APIReadIOSpaceExtended:          "ReadIoSpaceExtended",
	APIWriteIOSpaceExtended:         "WriteIoSpaceExtended",
	APIGetVersion:                   "GetVersion",
	APIWriteBreakPointEx:            "WriteBreakPointEx",
	APIRestoreBreakPointEx:          "RestoreBreakPointEx",
	APICauseBugCheck:                "CauseBugCheck",
	APISwitchProcessor:              "SwitchProcessor",
	APIPageIn:                       "PageIn",
	APIReadMachineSpecificRegister:  "ReadMachineSpecificRegister",
	APIWriteMachineSpecificRegister: "WriteMachineSpecificRegister",
	APIOldVlm1:                      "OldVlm1",
	APIOldVlm2:                      "OldVlm2",
	APISearchMemory:                 "SearchMemory",
	APIGetBusData:                   "GetBusData",
	APISetBusData:                   "SetBusData",
	APICheckLowMemory:               "CheckLowMemory",
	APIClearAllInternalBreakpoints:  "ClearAllInternalBreakpoints",
	APIFillMemory:                   "FillMemory",
	APIQueryMemory:                  "QueryMemory",
	APISwitchPartition:              "SwitchPartition",
	APIWriteCustomBreakpoint:        "WriteCustomBreakpoint",
	APIGetContextEx:                 "GetContextEx",
	APISetContextEx:                 "SetContextEx",
	APIPrintString:                  "PrintString",
	APIGetString:                    "GetString",
	APIPrintTrace:                   "PrintTrace",
	APICreateFile:                   "CreateFile",
	APIReadFile:                     "ReadFile",
	APIWriteFile:                    "WriteFile",
	APICloseFile:                    "CloseFile",
	StateException:                  "StateException",
	StateLoadSymbols:                "StateLoadSymbols",
	StateCommandString:              "StateCommandString",
}

// String returns the protocol name of a ("ReadVirtualMemory"), or
// "API_0x%04X" for a number no public header defines.
func (a APINumber) String() string {
	if s, ok := apiNames[a]; ok {
		return s
	}
	return fmt.Sprintf("API_0x%04X", uint32(a))
}

// Known reports whether a is an API number or state this package names.
func (a APINumber) Known() bool {
	_, ok := apiNames[a]
	return ok
}

// Manipulate is DBGKD_MANIPULATE_STATE64 plus the extra data that follows it
// in a STATE_MANIPULATE payload. The host sends one per request; the target
// answers by echoing it with outputs and ReturnStatus filled in (see Reply).
//
// Layout (offsets from the start of the payload):
//
//	 0  u32  ApiNumber
//	 4  u16  ProcessorLevel
//	 6  u16  Processor
//	 8  u32  ReturnStatus (NTSTATUS)
//	12  u32  padding (always encoded as zero)
//	16  [40] union, interpreted by ApiNumber — see the typed accessors
//	56  ...  extra data
type Manipulate struct {
	API            APINumber
	ProcessorLevel uint16
	Processor      uint16
	ReturnStatus   uint32
	U              [40]byte // the union at offset 16, raw
	Extra          []byte   // data after the 56-byte structure
}

// fields lists the structure's fields; the padding @12 stays zero.
func (m *Manipulate) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{{0, &m.API}, {4, &m.ProcessorLevel}, {6, &m.Processor}, {8, &m.ReturnStatus}, {manipulateUnionOff, m.U[:]}})
}

// DecodeManipulate parses a STATE_MANIPULATE payload. It fails with an error
// wrapping ErrPayloadTooShort when payload holds fewer than ManipulateSize
// bytes. The returned Extra aliases payload (no copy): copy it before reusing
// the payload buffer. Extra is nil when there is no extra data.
func DecodeManipulate(payload []byte) (m Manipulate, err error) {
	m.Extra, err = decodeFixed(payload, "DBGKD_MANIPULATE_STATE64", ManipulateSize, m.wire)
	return m, err
}

// Append appends the 56-byte structure followed by Extra to dst and returns
// the extended slice.
func (m *Manipulate) Append(dst []byte) []byte {
	return appendFixed(dst, ManipulateSize, m.Extra, m.wire)
}

// Size returns the encoded length: ManipulateSize + len(Extra).
func (m *Manipulate) Size() int { return ManipulateSize + len(m.Extra) }

// String summarises m for logs, e.g.
// "ReadVirtualMemory cpu=0 status=0x00000000 extra=16".
func (m Manipulate) String() string {
	return fmt.Sprintf("%v cpu=%d status=0x%08X extra=%d", m.API, m.Processor, m.ReturnStatus, len(m.Extra))
}

// Reply returns the target's answer to request m: the same structure (API,
// processor fields and union echoed), with ReturnStatus set to status and
// Extra set to extra. Set output union fields on the result afterwards.
func (m *Manipulate) Reply(status uint32, extra []byte) Manipulate {
	r := *m
	r.ReturnStatus = status
	r.Extra = extra
	return r
}

// The typed views of the union list their fields at offsets from the start
// of the 56-byte structure, as in docs/kd-protocol.md, so always ≥ 16.

// get reads the union fields fs.
func (m *Manipulate) get(fs []wireField) { getFields(m.U[:], manipulateUnionOff, fs...) }

// put stores the union fields fs.
func (m *Manipulate) put(fs []wireField) { putFields(m.U[:], manipulateUnionOff, fs...) }

// u32 returns the union's u32 at offset off.
func (m *Manipulate) u32(off int) (v uint32) { m.get([]wireField{{off, &v}}); return v }

// put32 stores v as the union's u32 at offset off.
func (m *Manipulate) put32(off int, v uint32) { m.put([]wireField{{off, &v}}) }

// MemoryArgs is the DBGKD_READ_MEMORY64 / DBGKD_WRITE_MEMORY64 union used by
// Read/WriteVirtualMemory, Read/WritePhysicalMemory and Read/WriteControlSpace.
type MemoryArgs struct {
	Address uint64 // TargetBaseAddress @16 (an index for AMD64 control space)
	Count   uint32 // TransferCount @24: bytes requested
	Actual  uint32 // ActualBytesRead/Written @28; a caching hint in physical requests
}

func (a *MemoryArgs) fields() []wireField {
	return []wireField{{16, &a.Address}, {24, &a.Count}, {28, &a.Actual}}
}

// Memory returns the memory-transfer union.
func (m *Manipulate) Memory() (a MemoryArgs) { m.get(a.fields()); return a }

// SetMemory stores a in the memory-transfer union.
func (m *Manipulate) SetMemory(a MemoryArgs) { m.put(a.fields()) }

// ContextFlags returns the u32 at offset 16: ContextFlags for SetContext
// (the Unused field of GetContext).
func (m *Manipulate) ContextFlags() uint32 { return m.u32(16) }

// SetContextFlags stores the u32 at offset 16 (SetContext's ContextFlags).
func (m *Manipulate) SetContextFlags(v uint32) { m.put32(16, v) }

// ContextExArgs is the DBGKD_CONTEXT_EX union of GetContextEx/SetContextEx:
// a slice of the CONTEXT record.
type ContextExArgs struct {
	Offset      uint32 // @16: first CONTEXT byte
	ByteCount   uint32 // @20: bytes requested
	BytesCopied uint32 // @24: bytes actually transferred (reply)
}

func (a *ContextExArgs) fields() []wireField {
	return []wireField{{16, &a.Offset}, {20, &a.ByteCount}, {24, &a.BytesCopied}}
}

// ContextEx returns the GetContextEx/SetContextEx union.
func (m *Manipulate) ContextEx() (a ContextExArgs) { m.get(a.fields()); return a }

// SetContextEx stores a in the GetContextEx/SetContextEx union.
func (m *Manipulate) SetContextEx(a ContextExArgs) {
	putFields(m.U[:], manipulateUnionOff, a.fields()...)
}

// BreakPointArgs is the DBGKD_WRITE_BREAKPOINT64 union of WriteBreakPoint.
type BreakPointArgs struct {
	Address uint64 // BreakPointAddress @16
	Handle  uint32 // BreakPointHandle @24 (output; 0 = no slot)
}

func (a *BreakPointArgs) fields() []wireField {
	return []wireField{{16, &a.Address}, {24, &a.Handle}}
}

// BreakPoint returns the WriteBreakPoint union.
func (m *Manipulate) BreakPoint() (a BreakPointArgs) { m.get(a.fields()); return a }

// SetBreakPoint stores a in the WriteBreakPoint union.
func (m *Manipulate) SetBreakPoint(a BreakPointArgs) {
	putFields(m.U[:], manipulateUnionOff, a.fields()...)
}

// RestoreHandle returns RestoreBreakPoint's BreakPointHandle (@16).
func (m *Manipulate) RestoreHandle() uint32 { return m.u32(16) }

// SetRestoreHandle stores RestoreBreakPoint's BreakPointHandle (@16).
func (m *Manipulate) SetRestoreHandle(h uint32) { m.put32(16, h) }

// ContinueStatus returns the ContinueStatus (@16) of Continue or Continue2.
func (m *Manipulate) ContinueStatus() uint32 { return m.u32(16) }

// SetContinueStatus stores the ContinueStatus (@16) of Continue or Continue2.
func (m *Manipulate) SetContinueStatus(s uint32) { m.put32(16, s) }

// Continue2Args is the AMD64 DBGKD_CONTINUE2 union: a continue status plus
// the control set (pack 4) applied before the target resumes.
type Continue2Args struct {
	ContinueStatus     uint32 // @16: NT_SUCCESS = exception handled
	TraceFlag          uint32 // @20: non-zero = single step (EFLAGS.TF)
	Dr7                uint64 // @24: loaded on all processors
	CurrentSymbolStart uint64 // @32: 1 = leave the symbol range alone
	CurrentSymbolEnd   uint64 // @40
}

func (a *Continue2Args) fields() []wireField {
	return []wireField{{16, &a.ContinueStatus}, {20, &a.TraceFlag}, {24, &a.Dr7}, {32, &a.CurrentSymbolStart}, {40, &a.CurrentSymbolEnd}}
}

// Continue2 returns the AMD64 Continue2 union.
func (m *Manipulate) Continue2() (a Continue2Args) { m.get(a.fields()); return a }

// SetContinue2 stores a in the AMD64 Continue2 union.
func (m *Manipulate) SetContinue2(a Continue2Args) {
	putFields(m.U[:], manipulateUnionOff, a.fields()...)
}

// Version returns the DBGKD_GET_VERSION64 held in the union (GetVersion).
func (m *Manipulate) Version() Version {
	v, _ := DecodeVersion(m.U[:]) // 40 bytes: cannot fail
	return v
}

// SetVersion stores v in the union (the target's GetVersion reply).
func (m *Manipulate) SetVersion(v Version) {
	v.Append(m.U[:0]) // exactly VersionSize bytes: fills U in place
}

// MSRArgs is the DBGKD_READ_WRITE_MSR union of Read/WriteMachineSpecificRegister.
type MSRArgs struct {
	MSR  uint32 // Msr @16
	Low  uint32 // DataValueLow @20
	High uint32 // DataValueHigh @24
}

// Value returns the 64-bit register value High:Low.
func (a MSRArgs) Value() uint64 { return uint64(a.High)<<32 | uint64(a.Low) }

func (a *MSRArgs) fields() []wireField {
	return []wireField{{16, &a.MSR}, {20, &a.Low}, {24, &a.High}}
}

// MSR returns the MSR union.
func (m *Manipulate) MSR() (a MSRArgs) { m.get(a.fields()); return a }

// SetMSR stores a in the MSR union.
func (m *Manipulate) SetMSR(a MSRArgs) { m.put(a.fields()) }

// QueryMemory address spaces and flags (DBGKD_QUERY_MEMORY).
const (
	QueryAddressSpaceVirtual = 0 // request: AddressSpace
	QueryAddressSpaceProcess = 0 // reply: user address of the current process
	QueryAddressSpaceSession = 1 // reply: session space
	QueryAddressSpaceKernel  = 2 // reply: kernel space
	QueryFlagRead            = 1
	QueryFlagWrite           = 2
	QueryFlagExecute         = 4
	QueryFlagFixed           = 8
)

// QueryMemoryArgs is the DBGKD_QUERY_MEMORY union of QueryMemory.
type QueryMemoryArgs struct {
	Address      uint64 // @16
	Reserved     uint64 // @24
	AddressSpace uint32 // @32: in 0 = virtual; out QueryAddressSpace*
	Flags        uint32 // @36: out QueryFlag*
}

func (a *QueryMemoryArgs) fields() []wireField {
	return []wireField{{16, &a.Address}, {24, &a.Reserved}, {32, &a.AddressSpace}, {36, &a.Flags}}
}

// QueryMemory returns the QueryMemory union.
func (m *Manipulate) QueryMemory() (a QueryMemoryArgs) { m.get(a.fields()); return a }

// SetQueryMemory stores a in the QueryMemory union.
func (m *Manipulate) SetQueryMemory(a QueryMemoryArgs) {
	putFields(m.U[:], manipulateUnionOff, a.fields()...)
}

// IOSpaceArgs is the DBGKD_READ_WRITE_IO64 union of Read/WriteIoSpace.
type IOSpaceArgs struct {
	Address   uint64 // IoAddress @16
	DataSize  uint32 // @24: 1, 2 or 4
	DataValue uint32 // @28
}

func (a *IOSpaceArgs) fields() []wireField {
	return []wireField{{16, &a.Address}, {24, &a.DataSize}, {28, &a.DataValue}}
}

// IOSpace returns the Read/WriteIoSpace union.
func (m *Manipulate) IOSpace() (a IOSpaceArgs) { m.get(a.fields()); return a }

// SetIOSpace stores a in the Read/WriteIoSpace union.
func (m *Manipulate) SetIOSpace(a IOSpaceArgs) { m.put(a.fields()) }

// Request constructors for the host side. They leave ProcessorLevel and
// Processor zero; set Processor for requests that target one CPU (contexts,
// control space, MSRs, SwitchProcessor).

func newMemoryRequest(api APINumber, addr uint64, n uint32, data []byte) Manipulate {
	m := Manipulate{API: api, Extra: data}
	m.SetMemory(MemoryArgs{Address: addr, Count: n})
	return m
}

// NewReadVirtual requests n bytes of virtual memory at addr. Targets clamp n
// to MaxManipulateData.
func NewReadVirtual(addr uint64, n uint32) Manipulate {
	return newMemoryRequest(APIReadVirtualMemory, addr, n, nil)
}

// NewWriteVirtual requests that data be written to virtual memory at addr.
// Extra aliases data.
func NewWriteVirtual(addr uint64, data []byte) Manipulate {
	return newMemoryRequest(APIWriteVirtualMemory, addr, uint32(len(data)), data)
}

// NewReadPhysical requests n bytes of physical memory at addr (default caching).
func NewReadPhysical(addr uint64, n uint32) Manipulate {
	return newMemoryRequest(APIReadPhysicalMemory, addr, n, nil)
}

// NewWritePhysical requests that data be written to physical memory at addr.
func NewWritePhysical(addr uint64, data []byte) Manipulate {
	return newMemoryRequest(APIWritePhysicalMemory, addr, uint32(len(data)), data)
}

// NewReadControlSpace requests n bytes of control space of processor cpu.
// On AMD64 index selects: 0 KPCR pointer, 1 KPRCB pointer,
// 2 KSPECIAL_REGISTERS, 3 current KTHREAD pointer.
func NewReadControlSpace(cpu uint16, index uint64, n uint32) Manipulate {
	m := newMemoryRequest(APIReadControlSpace, index, n, nil)
	m.Processor = cpu
	return m
}

// NewWriteControlSpace requests that data be written to control space index
// of processor cpu.
func NewWriteControlSpace(cpu uint16, index uint64, data []byte) Manipulate {
	m := newMemoryRequest(APIWriteControlSpace, index, uint32(len(data)), data)
	m.Processor = cpu
	return m
}

// NewGetVersion builds the host's GetVersion request (vector V4).
func NewGetVersion() Manipulate { return Manipulate{API: APIGetVersion} }

// NewGetContext requests the full CONTEXT of processor cpu.
func NewGetContext(cpu uint16) Manipulate {
	return Manipulate{API: APIGetContext, Processor: cpu}
}

// NewSetContext requests that the CONTEXT record ctx (encoded, e.g. by
// ContextX64.Encode) be loaded into processor cpu; flags is stored as the
// union's ContextFlags.
func NewSetContext(cpu uint16, flags uint32, ctx []byte) Manipulate {
	m := Manipulate{API: APISetContext, Processor: cpu, Extra: ctx}
	m.SetContextFlags(flags)
	return m
}

// NewGetContextEx requests n bytes of processor cpu's CONTEXT from offset off.
func NewGetContextEx(cpu uint16, off, n uint32) Manipulate {
	m := Manipulate{API: APIGetContextEx, Processor: cpu}
	m.SetContextEx(ContextExArgs{Offset: off, ByteCount: n})
	return m
}

// NewSetContextEx requests that data be written into processor cpu's CONTEXT
// at offset off.
func NewSetContextEx(cpu uint16, off uint32, data []byte) Manipulate {
	m := Manipulate{API: APISetContextEx, Processor: cpu, Extra: data}
	m.SetContextEx(ContextExArgs{Offset: off, ByteCount: uint32(len(data))})
	return m
}

// NewWriteBreakPoint requests a software breakpoint at addr.
func NewWriteBreakPoint(addr uint64) Manipulate {
	m := Manipulate{API: APIWriteBreakPoint}
	m.SetBreakPoint(BreakPointArgs{Address: addr})
	return m
}

// NewRestoreBreakPoint requests removal of the breakpoint with handle h.
func NewRestoreBreakPoint(h uint32) Manipulate {
	m := Manipulate{API: APIRestoreBreakPoint}
	m.SetRestoreHandle(h)
	return m
}

// NewContinue resumes the target with status (e.g. DbgContinue). The target
// sends no reply.
func NewContinue(status uint32) Manipulate {
	m := Manipulate{API: APIContinue}
	m.SetContinueStatus(status)
	return m
}

// NewContinue2 resumes the target and applies the AMD64 control set a. The
// target sends no reply. Vector V7 is
// NewContinue2(Continue2Args{ContinueStatus: DbgContinue, CurrentSymbolStart: 1}).
func NewContinue2(a Continue2Args) Manipulate {
	m := Manipulate{API: APIContinue2}
	m.SetContinue2(a)
	return m
}

// NewReadMSR requests the value of model-specific register msr on cpu.
func NewReadMSR(cpu uint16, msr uint32) Manipulate {
	m := Manipulate{API: APIReadMachineSpecificRegister, Processor: cpu}
	m.SetMSR(MSRArgs{MSR: msr})
	return m
}

// NewWriteMSR requests that msr on cpu be set to v.
func NewWriteMSR(cpu uint16, msr uint32, v uint64) Manipulate {
	m := Manipulate{API: APIWriteMachineSpecificRegister, Processor: cpu}
	m.SetMSR(MSRArgs{MSR: msr, Low: uint32(v), High: uint32(v >> 32)})
	return m
}

// NewReadIOSpace requests a size-byte (1, 2 or 4) port read at addr.
func NewReadIOSpace(addr uint64, size uint32) Manipulate {
	m := Manipulate{API: APIReadIOSpace}
	m.SetIOSpace(IOSpaceArgs{Address: addr, DataSize: size})
	return m
}

// NewWriteIOSpace requests a size-byte (1, 2 or 4) port write of v at addr.
func NewWriteIOSpace(addr uint64, size, v uint32) Manipulate {
	m := Manipulate{API: APIWriteIOSpace}
	m.SetIOSpace(IOSpaceArgs{Address: addr, DataSize: size, DataValue: v})
	return m
}

// NewQueryMemory asks which address space addr belongs to and its protection.
func NewQueryMemory(addr uint64) Manipulate {
	m := Manipulate{API: APIQueryMemory}
	m.SetQueryMemory(QueryMemoryArgs{Address: addr, AddressSpace: QueryAddressSpaceVirtual})
	return m
}

// NewSwitchProcessor asks the target to report from processor cpu; the
// selected CPU answers with a new state change, not a manipulate reply.
func NewSwitchProcessor(cpu uint16) Manipulate {
	return Manipulate{API: APISwitchProcessor, Processor: cpu}
}

// NewReboot asks the target to reboot. No reply follows.
func NewReboot() Manipulate { return Manipulate{API: APIReboot} }
