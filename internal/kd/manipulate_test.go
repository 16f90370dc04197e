package kd

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestManipulateOffsets encodes each union member with distinct values and
// checks the bytes at every offset docs/kd-protocol.md §3 documents, then decodes
// the bytes back through the same accessor.
func TestManipulateOffsets(t *testing.T) {
	header := []field{
		{"ApiNumber", 0, 4, 0x31AB},
		{"ProcessorLevel", 4, 2, 0x0607},
		{"Processor", 6, 2, 0x0809},
		{"ReturnStatus", 8, 4, 0xC0DE0001},
		{"pad", 12, 4, 0},
	}
	tests := []struct {
		name   string
		union  unionCase
		fields []field
	}{
		{"memory", viaUnion((*Manipulate).SetMemory, (*Manipulate).Memory,
			MemoryArgs{Address: 0x1122334455667788, Count: 0xA1A2A3A4, Actual: 0xB1B2B3B4}), []field{
			{"TargetBaseAddress", 16, 8, 0x1122334455667788},
			{"TransferCount", 24, 4, 0xA1A2A3A4},
			{"ActualBytes", 28, 4, 0xB1B2B3B4},
		}},
		{"context flags", viaUnion((*Manipulate).SetContextFlags, (*Manipulate).ContextFlags, ContextAll),
			[]field{{"ContextFlags", 16, 4, 0x10001F}}},
		{"context ex", viaUnion((*Manipulate).SetContextEx, (*Manipulate).ContextEx,
			ContextExArgs{Offset: 0x11111111, ByteCount: 0x22222222, BytesCopied: 0x33333333}), []field{
			{"Offset", 16, 4, 0x11111111},
			{"ByteCount", 20, 4, 0x22222222},
			{"BytesCopied", 24, 4, 0x33333333},
		}},
		{"write breakpoint", viaUnion((*Manipulate).SetBreakPoint, (*Manipulate).BreakPoint,
			BreakPointArgs{Address: 0xfffff80212345678, Handle: 0x0A0B0C0D}), []field{
			{"BreakPointAddress", 16, 8, 0xfffff80212345678},
			{"BreakPointHandle", 24, 4, 0x0A0B0C0D},
		}},
		{"restore breakpoint", viaUnion((*Manipulate).SetRestoreHandle, (*Manipulate).RestoreHandle, uint32(0x5A5A1234)),
			[]field{{"BreakPointHandle", 16, 4, 0x5A5A1234}}},
		{"continue", viaUnion((*Manipulate).SetContinueStatus, (*Manipulate).ContinueStatus, DbgExceptionNotHandled),
			[]field{{"ContinueStatus", 16, 4, 0x80010001}}},
		{"continue2", viaUnion((*Manipulate).SetContinue2, (*Manipulate).Continue2,
			Continue2Args{ContinueStatus: 0x01020304, TraceFlag: 0x05060708,
				Dr7: 0x1112131415161718, CurrentSymbolStart: 0x2122232425262728, CurrentSymbolEnd: 0x3132333435363738}), []field{
			{"ContinueStatus", 16, 4, 0x01020304},
			{"TraceFlag", 20, 4, 0x05060708},
			{"Dr7", 24, 8, 0x1112131415161718},
			{"CurrentSymbolStart", 32, 8, 0x2122232425262728},
			{"CurrentSymbolEnd", 40, 8, 0x3132333435363738},
		}},
		{"get version", viaUnion((*Manipulate).SetVersion, (*Manipulate).Version, v5Version), []field{
			{"MajorVersion", 16, 2, 0x000F},
			{"MinorVersion", 18, 2, 9600},
			{"ProtocolVersion", 20, 1, 6},
			{"KdSecondaryVersion", 21, 1, 2},
			{"Flags", 22, 2, 7},
			{"MachineType", 24, 2, 0x8664},
			{"MaxPacketType", 26, 1, 12},
			{"MaxStateChange", 27, 1, 3},
			{"MaxManipulate", 28, 1, 0x31},
			{"KernBase", 32, 8, 0xfffff8026bc18000},
			{"PsLoadedModuleList", 40, 8, 0xfffff8026bee22d0},
			{"DebuggerDataList", 48, 8, 0xfffff8026bef91f0},
		}},
		{"msr", viaUnion((*Manipulate).SetMSR, (*Manipulate).MSR, MSRArgs{MSR: 0xC0000082, Low: 0x89ABCDEF, High: 0x01234567}),
			[]field{{"Msr", 16, 4, 0xC0000082}, {"DataValueLow", 20, 4, 0x89ABCDEF}, {"DataValueHigh", 24, 4, 0x01234567}}},
		{"query memory", viaUnion((*Manipulate).SetQueryMemory, (*Manipulate).QueryMemory,
			QueryMemoryArgs{Address: 0x7ff612340000, Reserved: 0x4142434445464748, AddressSpace: 2, Flags: 7}), []field{
			{"Address", 16, 8, 0x7ff612340000},
			{"Reserved", 24, 8, 0x4142434445464748},
			{"AddressSpace", 32, 4, 2},
			{"Flags", 36, 4, 7},
		}},
		{"io space", viaUnion((*Manipulate).SetIOSpace, (*Manipulate).IOSpace, IOSpaceArgs{Address: 0x3F8, DataSize: 1, DataValue: 0x99887766}),
			[]field{{"IoAddress", 16, 8, 0x3F8}, {"DataSize", 24, 4, 1}, {"DataValue", 28, 4, 0x99887766}}},
	}
	if v := (MSRArgs{MSR: 0xC0000082, Low: 0x89ABCDEF, High: 0x01234567}).Value(); v != 0x0123456789ABCDEF {
		t.Errorf("MSRArgs.Value() = %#x, want High:Low", v)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Manipulate{API: 0x31AB, ProcessorLevel: 0x0607, Processor: 0x0809, ReturnStatus: 0xC0DE0001,
				Extra: []byte{0xEE, 0xFF}}
			tt.union.set(&m)
			b := manipulateCodec.layout(t, m, append(slices.Clone(header), tt.fields...))
			if len(b) != ManipulateSize+2 || m.Size() != len(b) {
				t.Fatalf("encoded %d bytes (Size %d), want %d", len(b), m.Size(), ManipulateSize+2)
			}
			if !bytes.Equal(b[ManipulateSize:], []byte{0xEE, 0xFF}) {
				t.Errorf("extra data at 56 = %x", b[ManipulateSize:])
			}
			d, _ := DecodeManipulate(b)
			tt.union.check(t, &d)
		})
	}
}

func TestManipulateConstructors(t *testing.T) {
	data := []byte{1, 2, 3, 4, 5}
	tests := []struct {
		name  string
		m     Manipulate
		api   APINumber
		cpu   uint16
		extra []byte
		ok    func(m *Manipulate) bool
	}{
		{"ReadVirtual", NewReadVirtual(0x1000, 64), APIReadVirtualMemory, 0, nil,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 0x1000, Count: 64} }},
		{"WriteVirtual", NewWriteVirtual(0x2000, data), APIWriteVirtualMemory, 0, data,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 0x2000, Count: 5} }},
		{"ReadPhysical", NewReadPhysical(0x3000, 8), APIReadPhysicalMemory, 0, nil,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 0x3000, Count: 8} }},
		{"WritePhysical", NewWritePhysical(0x4000, data), APIWritePhysicalMemory, 0, data,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 0x4000, Count: 5} }},
		{"ReadControlSpace", NewReadControlSpace(1, 2, 0x100), APIReadControlSpace, 1, nil,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 2, Count: 0x100} }},
		{"WriteControlSpace", NewWriteControlSpace(1, 2, data), APIWriteControlSpace, 1, data,
			func(m *Manipulate) bool { return m.Memory() == MemoryArgs{Address: 2, Count: 5} }},
		{"GetVersion", NewGetVersion(), APIGetVersion, 0, nil,
			func(m *Manipulate) bool { return m.U == [40]byte{} }},
		{"GetContext", NewGetContext(3), APIGetContext, 3, nil,
			func(m *Manipulate) bool { return m.U == [40]byte{} }},
		{"SetContext", NewSetContext(3, ContextFull, data), APISetContext, 3, data,
			func(m *Manipulate) bool { return m.ContextFlags() == ContextFull }},
		{"GetContextEx", NewGetContextEx(1, 0, ContextX64Size), APIGetContextEx, 1, nil,
			func(m *Manipulate) bool { return m.ContextEx() == ContextExArgs{ByteCount: 0x4D0} }},
		{"SetContextEx", NewSetContextEx(1, 0x78, data), APISetContextEx, 1, data,
			func(m *Manipulate) bool { return m.ContextEx() == ContextExArgs{Offset: 0x78, ByteCount: 5} }},
		{"WriteBreakPoint", NewWriteBreakPoint(0xfffff80000001000), APIWriteBreakPoint, 0, nil,
			func(m *Manipulate) bool { return m.BreakPoint() == BreakPointArgs{Address: 0xfffff80000001000} }},
		{"RestoreBreakPoint", NewRestoreBreakPoint(7), APIRestoreBreakPoint, 0, nil,
			func(m *Manipulate) bool { return m.RestoreHandle() == 7 }},
		{"Continue", NewContinue(DbgContinue), APIContinue, 0, nil,
			func(m *Manipulate) bool { return m.ContinueStatus() == DbgContinue }},
		{"Continue2", NewContinue2(Continue2Args{ContinueStatus: DbgContinue, TraceFlag: 1}), APIContinue2, 0, nil,
			func(m *Manipulate) bool {
				return m.Continue2() == Continue2Args{ContinueStatus: DbgContinue, TraceFlag: 1}
			}},
		{"ReadMSR", NewReadMSR(1, 0xC0000080), APIReadMachineSpecificRegister, 1, nil,
			func(m *Manipulate) bool { return m.MSR() == MSRArgs{MSR: 0xC0000080} }},
		{"WriteMSR", NewWriteMSR(1, 0xC0000080, 0x1122334455667788), APIWriteMachineSpecificRegister, 1, nil,
			func(m *Manipulate) bool {
				return m.MSR() == MSRArgs{MSR: 0xC0000080, Low: 0x55667788, High: 0x11223344}
			}},
		{"ReadIOSpace", NewReadIOSpace(0x3F8, 1), APIReadIOSpace, 0, nil,
			func(m *Manipulate) bool { return m.IOSpace() == IOSpaceArgs{Address: 0x3F8, DataSize: 1} }},
		{"WriteIOSpace", NewWriteIOSpace(0x3F8, 2, 0xABCD), APIWriteIOSpace, 0, nil,
			func(m *Manipulate) bool {
				return m.IOSpace() == IOSpaceArgs{Address: 0x3F8, DataSize: 2, DataValue: 0xABCD}
			}},
		{"QueryMemory", NewQueryMemory(0x10000), APIQueryMemory, 0, nil,
			func(m *Manipulate) bool { return m.QueryMemory() == QueryMemoryArgs{Address: 0x10000} }},
		{"SwitchProcessor", NewSwitchProcessor(5), APISwitchProcessor, 5, nil,
			func(m *Manipulate) bool { return m.U == [40]byte{} }},
		{"Reboot", NewReboot(), APIReboot, 0, nil,
			func(m *Manipulate) bool { return m.U == [40]byte{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			if m.API != tt.api || m.Processor != tt.cpu || m.ProcessorLevel != 0 || m.ReturnStatus != 0 {
				t.Errorf("header = %v level %d, want %v cpu %d", m, m.ProcessorLevel, tt.api, tt.cpu)
			}
			if !bytes.Equal(m.Extra, tt.extra) {
				t.Errorf("Extra = %x, want %x", m.Extra, tt.extra)
			}
			if !tt.ok(&m) {
				t.Errorf("union not as expected: % x", m.U)
			}
		})
	}
}

func TestManipulateReply(t *testing.T) {
	req := NewReadVirtual(0xfffff8026bc18000, 4)
	req.ReturnStatus = 0x103 // stale value a real host leaves behind
	rep := req.Reply(StatusSuccess, []byte{1, 2, 3, 4})
	mem := rep.Memory()
	mem.Actual = 4
	rep.SetMemory(mem)
	if rep.API != APIReadVirtualMemory || rep.ReturnStatus != StatusSuccess || len(rep.Extra) != 4 {
		t.Fatalf("reply = %v", rep)
	}
	if req.ReturnStatus != 0x103 || req.Memory().Actual != 0 || req.Extra != nil {
		t.Fatalf("Reply modified the request: %v %+v", req, req.Memory())
	}
	if got := rep.Memory(); got != (MemoryArgs{Address: 0xfffff8026bc18000, Count: 4, Actual: 4}) {
		t.Fatalf("reply union = %+v", got)
	}
}

func TestDecodeManipulateLengths(t *testing.T) {
	full := NewWriteVirtual(0x1000, []byte("abcdef"))
	b := full.Append(nil)
	for n := 0; n <= len(b); n++ {
		m, err := DecodeManipulate(b[:n])
		switch {
		case n < ManipulateSize:
			if !errors.Is(err, ErrPayloadTooShort) {
				t.Fatalf("len %d: err = %v, want ErrPayloadTooShort", n, err)
			}
			if !strings.Contains(err.Error(), "DBGKD_MANIPULATE_STATE64") {
				t.Errorf("error does not name the structure: %v", err)
			}
		case n == ManipulateSize:
			if err != nil || m.Extra != nil {
				t.Fatalf("len 56: %v, extra %x", err, m.Extra)
			}
		default:
			if err != nil || !bytes.Equal(m.Extra, b[ManipulateSize:n]) {
				t.Fatalf("len %d: %v, extra %x", n, err, m.Extra)
			}
		}
	}
	// Extra aliases the payload, as documented.
	m, _ := DecodeManipulate(b)
	b[ManipulateSize] = 'Z'
	if m.Extra[0] != 'Z' {
		t.Errorf("Extra does not alias the payload")
	}
}

func TestAPINumberString(t *testing.T) {
	tests := []struct {
		a    APINumber
		want string
	}{
		{APIReadVirtualMemory, "ReadVirtualMemory"},
		{APIGetVersion, "GetVersion"},
		{APIReadMachineSpecificRegister, "ReadMachineSpecificRegister"},
		{APIGetContextEx, "GetContextEx"},
		{APISetContextEx, "SetContextEx"},
		{APIPrintString, "PrintString"},
		{APICloseFile, "CloseFile"},
		{APIPrintTrace, "PrintTrace"},
		{StateLoadSymbols, "StateLoadSymbols"},
		{0x3161, "API_0x3161"},
		{0x314A, "API_0x314A"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint32(tt.a), got, tt.want)
		}
	}
	// Every number 0x3130..0x3160 except the unassigned 0x314A..0x314F is named.
	for a := APIMinManipulate; a < APIMaxManipulate; a++ {
		unassigned := a >= 0x314A && a <= 0x314F
		if a.Known() == unassigned {
			t.Errorf("%#x: Known() = %v", uint32(a), a.Known())
		}
	}
	if APIGetVersion != 0x3146 || APIReadMachineSpecificRegister != 0x3152 || APIGetContextEx != 0x315F ||
		APISetContextEx != 0x3160 || APIContinue2 != 0x313C || APIReadIOSpace != 0x3139 {
		t.Error("API numbers drifted from docs/kd-protocol.md §3.1")
	}
}

func FuzzDecodeManipulate(f *testing.F) {
	for _, m := range []Manipulate{NewGetVersion(), NewReadVirtual(0xfffff8026bc18000, 16),
		NewWriteVirtual(0x1000, []byte{0xcc}), NewContinue2(Continue2Args{ContinueStatus: DbgContinue, CurrentSymbolStart: 1})} {
		f.Add(m.Append(nil))
	}
	f.Add(make([]byte, ManipulateSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ok := manipulateCodec.fuzz(t, b); ok {
			_ = m.String()
			_ = m.Version().String()
		}
	})
}

// unionCase is how a layout row reaches one view of the manipulate union:
// set stores the row's value, check reads it back from the decoded copy.
type unionCase struct {
	set   func(*Manipulate)
	check func(t *testing.T, m *Manipulate)
}

// viaUnion builds the unionCase that stores v with set and expects get to
// return v.
func viaUnion[T comparable](set func(*Manipulate, T), get func(*Manipulate) T, v T) unionCase {
	return unionCase{
		set: func(m *Manipulate) { set(m, v) },
		check: func(t *testing.T, m *Manipulate) {
			t.Helper()
			if got := get(m); got != v {
				t.Errorf("read back %+v, want %+v", got, v)
			}
		},
	}
}
