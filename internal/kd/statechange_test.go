package kd

import (
	"bytes"
	"errors"
	"kdsrv/internal/testkit"
	"strings"
	"testing"
)

// controlReport fills every control-report field with a distinct value.
var testControlReport = ControlReportX64{
	Dr6: 0xD6D6D6D6D6D6D6D6, Dr7: 0xD7D7D7D7D7D7D7D7, EFlags: 0xEF1A65, InstructionCount: 0x0C,
	ReportFlags: 0x0003, InstructionStream: [16]byte{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
		0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF},
	SegCs: 0xC5C5, SegDs: 0xD5D5, SegEs: 0xE5E5, SegFs: 0xF5F5,
}

var controlFields = []field{
	{"Dr6", 192, 8, 0xD6D6D6D6D6D6D6D6},
	{"Dr7", 200, 8, 0xD7D7D7D7D7D7D7D7},
	{"EFlags", 208, 4, 0xEF1A65},
	{"InstructionCount", 212, 2, 0x0C},
	{"ReportFlags", 214, 2, 3},
	{"InstructionStream[0:8]", 216, 8, 0xA7A6A5A4A3A2A1A0},
	{"InstructionStream[8:16]", 224, 8, 0xAFAEADACABAAA9A8},
	{"SegCs", 232, 2, 0xC5C5},
	{"SegDs", 234, 2, 0xD5D5},
	{"SegEs", 236, 2, 0xE5E5},
	{"SegFs", 238, 2, 0xF5F5},
}

var stateHeaderFields = []field{
	{"ProcessorLevel", 4, 2, 0x0405},
	{"Processor", 6, 2, 0x0607},
	{"NumberProcessors", 8, 4, 0x08090A0B},
	{"pad", 12, 4, 0},
	{"Thread", 16, 8, 0x1011121314151617},
	{"ProgramCounter", 24, 8, 0x18191A1B1C1D1E1F},
}

func newTestStateChange(state uint32) StateChange {
	return StateChange{
		NewState: state, ProcessorLevel: 0x0405, Processor: 0x0607, NumberProcessors: 0x08090A0B,
		Thread: 0x1011121314151617, ProgramCounter: 0x18191A1B1C1D1E1F, Control: testControlReport,
	}
}

func TestStateChangeOffsets(t *testing.T) {
	exc := newTestStateChange(StateException)
	exc.Exception = ExceptionRecord64{
		ExceptionCode: 0x20212223, ExceptionFlags: 0x24252627, ExceptionRecord: 0x28292A2B2C2D2E2F,
		ExceptionAddress: 0x3031323334353637, NumberParameters: 0x38393A3B, FirstChance: 0x3C3D3E3F,
	}
	for i := range exc.Exception.ExceptionInformation {
		exc.Exception.ExceptionInformation[i] = 0x4000000000000000 | uint64(i)
	}
	excFields := []field{
		{"ExceptionCode", 32, 4, 0x20212223},
		{"ExceptionFlags", 36, 4, 0x24252627},
		{"ExceptionRecord", 40, 8, 0x28292A2B2C2D2E2F},
		{"ExceptionAddress", 48, 8, 0x3031323334353637},
		{"NumberParameters", 56, 4, 0x38393A3B},
		{"pad60", 60, 4, 0},
		{"ExceptionInformation[0]", 64, 8, 0x4000000000000000},
		{"ExceptionInformation[14]", 176, 8, 0x400000000000000E},
		{"FirstChance", 184, 4, 0x3C3D3E3F},
		{"pad188", 188, 4, 0},
	}

	load := newTestStateChange(StateLoadSymbols)
	load.LoadSymbols = LoadSymbols64{PathNameLength: 0x50515253, BaseOfDll: 0x5455565758595A5B,
		ProcessId: 0x5C5D5E5F60616263, CheckSum: 0x64656667, SizeOfImage: 0x68696A6B, UnloadSymbols: true}
	load.Extra = []byte("\\SystemRoot\\system32\\ntoskrnl.exe\x00")
	loadFields := []field{
		{"PathNameLength", 32, 4, 0x50515253},
		{"BaseOfDll", 40, 8, 0x5455565758595A5B},
		{"ProcessId", 48, 8, 0x5C5D5E5F60616263},
		{"CheckSum", 56, 4, 0x64656667},
		{"SizeOfImage", 60, 4, 0x68696A6B},
		{"UnloadSymbols", 64, 1, 1},
	}

	cmd := newTestStateChange(StateCommandString | StateAlternate)
	cmd.CommandString = CommandString64{Flags: 0x70717273, Reserved1: 0x74757677}
	for i := range cmd.CommandString.Reserved2 {
		cmd.CommandString.Reserved2[i] = 0x7800000000000000 | uint64(i)
	}
	cmd.Extra = []byte("name\x00.reload\x00")
	cmdFields := []field{
		{"Flags", 32, 4, 0x70717273},
		{"Reserved1", 36, 4, 0x74757677},
		{"Reserved2[0]", 40, 8, 0x7800000000000000},
		{"Reserved2[6]", 88, 8, 0x7800000000000006},
	}

	tests := []struct {
		name   string
		s      StateChange
		state  uint64
		fields []field
	}{
		{"exception", exc, StateException, excFields},
		{"load symbols", load, StateLoadSymbols, loadFields},
		{"command string (alternate)", cmd, StateCommandString | StateAlternate, cmdFields},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := append([]field{{"NewState", 0, 4, tt.state}}, stateHeaderFields...)
			fs = append(append(fs, tt.fields...), controlFields...)
			b := stateCodec.layout(t, tt.s, fs)
			if len(b) != StateChangeSize+len(tt.s.Extra) || tt.s.Size() != len(b) {
				t.Fatalf("encoded %d bytes, want %d", len(b), StateChangeSize+len(tt.s.Extra))
			}
			if !bytes.Equal(b[StateChangeSize:], tt.s.Extra) {
				t.Errorf("extra data = %q", b[StateChangeSize:])
			}
		})
	}

	if got := load.PathName(); got != `\SystemRoot\system32\ntoskrnl.exe` {
		t.Errorf("PathName() = %q", got)
	}
	if n, c := cmd.CommandStrings(); n != "name" || c != ".reload" {
		t.Errorf("CommandStrings() = %q, %q", n, c)
	}
	if !strings.Contains(load.String(), "unload symbols") || !strings.Contains(cmd.String(), ".reload") {
		t.Errorf("String(): %q / %q", load.String(), cmd.String())
	}
}

func TestStateChangeUnionSelection(t *testing.T) {
	// Only the member NewState selects is encoded; the others are ignored.
	s := newTestStateChange(StateLoadSymbols)
	s.Exception.ExceptionCode = 0xDEADBEEF
	s.LoadSymbols.BaseOfDll = 0x1000
	b := s.Append(nil)
	got, err := DecodeStateChange(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Exception != (ExceptionRecord64{}) || got.LoadSymbols.BaseOfDll != 0x1000 {
		t.Errorf("union selection wrong: %+v", got)
	}

	// An unknown state keeps the header and control report, not the union.
	s = newTestStateChange(0x3039)
	s.Exception.ExceptionCode = 0xDEADBEEF
	b = s.Append(nil)
	if !bytes.Equal(b[32:192], make([]byte, 160)) {
		t.Errorf("unknown state wrote union bytes")
	}
	got, err = DecodeStateChange(b)
	if err != nil || got.Control != testControlReport || got.ProgramCounter != s.ProgramCounter {
		t.Errorf("unknown state: %+v, %v", got, err)
	}
	if !strings.Contains(got.String(), "API_0x3039") {
		t.Errorf("String() = %q", got.String())
	}
}

func TestStateChangeHelpers(t *testing.T) {
	var s StateChange
	s.NewState = StateLoadSymbols
	s.SetPathName(`\Windows\System32\hal.dll`)
	if s.LoadSymbols.PathNameLength != uint32(len(`\Windows\System32\hal.dll`)+1) || s.PathName() != `\Windows\System32\hal.dll` {
		t.Errorf("SetPathName: %d %q", s.LoadSymbols.PathNameLength, s.PathName())
	}
	s.LoadSymbols.PathNameLength = 4 // clamps
	if s.PathName() != `\Win` {
		t.Errorf("PathName clamped = %q", s.PathName())
	}
	s.Extra = []byte("only-name")
	if n, c := s.CommandStrings(); n != "only-name" || c != "" {
		t.Errorf("CommandStrings = %q %q", n, c)
	}
	c := ControlReportX64{InstructionCount: 99}
	if len(c.Instructions()) != MaxInstructionStream {
		t.Errorf("Instructions not clamped")
	}
}

func TestDecodeStateChangeShort(t *testing.T) {
	raw := testkit.Unhex(t, v10Payload)
	for _, n := range []int{0, 1, 32, 192, StateChangeSize - 1} {
		if _, err := DecodeStateChange(raw[:n]); !errors.Is(err, ErrPayloadTooShort) {
			t.Errorf("len %d: err = %v", n, err)
		}
	}
}

func FuzzDecodeStateChange(f *testing.F) {
	f.Add(testkit.Unhex(f, v10Payload))
	load := newTestStateChange(StateLoadSymbols)
	load.SetPathName(`\SystemRoot\system32\ntoskrnl.exe`)
	f.Add(load.Append(nil))
	cmd := newTestStateChange(StateCommandString)
	cmd.Extra = []byte("a\x00b\x00")
	f.Add(cmd.Append(nil))
	f.Add(make([]byte, StateChangeSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := stateCodec.fuzz(t, b)
		if !ok {
			return
		}
		enc := s.Append(nil)
		if len(enc) != len(b) || !bytes.Equal(enc[stateControlOff:], b[stateControlOff:]) || !bytes.Equal(enc[:12], b[:12]) {
			t.Fatalf("header, control report or extra data not preserved:\n got %x\nwant %x", enc, b)
		}
		_ = s.String()
	})
}
