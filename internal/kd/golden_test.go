package kd

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

// payloadSum is the KD checksum: the byte sum of a payload.
func payloadSum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return s
}

// payloadHexText renders b as hex, 16 bytes per line.
func payloadHexText(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(16, len(b))
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

// checkPayloadGolden compares b with testdata/payloads/<name>.hex, rewriting
// the file when -update is given.
func checkPayloadGolden(t *testing.T, name string, b []byte) {
	t.Helper()
	checkGolden(t, "payloads", name, b)
}

// checkGolden compares b with testdata/<dir>/<name>.hex, rewriting the file
// when -update is given.
func checkGolden(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	path := filepath.Join("testdata", dir, name+".hex")
	testkit.Golden(t, path, []byte(payloadHexText(b)))
}

// leAt reads the size-byte little-endian value at off in b.
func leAt(b []byte, off, size int) uint64 {
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[off+i])
	}
	return v
}

// field is one documented field: offset, size in bytes and expected value.
type field struct {
	name string
	off  int
	size int
	want uint64
}

// checkFields verifies every field of fs in the encoding b.
func checkFields(t *testing.T, b []byte, fs []field) {
	t.Helper()
	for _, f := range fs {
		if f.off+f.size > len(b) {
			t.Errorf("%s @%#x: encoding is only %d bytes", f.name, f.off, len(b))
			continue
		}
		if got := leAt(b, f.off, f.size); got != f.want {
			t.Errorf("%s @%#x: got %#x, want %#x", f.name, f.off, got, f.want)
		}
	}
}

// v5Version is the GetVersion body of vector V5 (Win 8.1 x64 capture).
var v5Version = Version{
	MajorVersion:       0x000F,
	MinorVersion:       9600,
	ProtocolVersion:    ProtocolVersion2,
	KdSecondaryVersion: SecondaryVersionAMD64Context,
	Flags:              VersionFlagMP | VersionFlagData | VersionFlagPtr64,
	MachineType:        MachineAMD64,
	MaxPacketType:      uint8(TypeMax),
	MaxStateChange:     StateMax - StateException,
	MaxManipulate:      uint8(APIMaxManipulate - APIMinManipulate),
	KernBase:           0xfffff8026bc18000,
	PsLoadedModuleList: 0xfffff8026bee22d0,
	DebuggerDataList:   0xfffff8026bef91f0,
}

// v10Payload is the captured STATE_CHANGE64 payload of vector V10 (wire
// offsets 0x10..0xff of docs/kd-protocol.md §8).
const v10Payload = `
30300000 06000100 02000000 00000000
009822bc 858cffff 80335ec5 02f8ffff
03000080 00000000 00000000 00000000
80335ec5 02f8ffff 01000000 00000000
00000000 00000000 40000000 00000000
e05946c5 02f8ffff 00000000 00000000
00000000 00000000 00000000 00000000
00000000 00000000 00000000 00000000
00000000 00000000 00000000 00000000
00000000 00000000 00000000 00000000
00000000 00000000 00000000 00000000
00000000 00000000 01000000 00000000
f00ffeff 00000000 00040000 00000000
86000000 10000300 ccc3cccc cccccccc
0f1f8400 00000000 10002b00 2b005300`

// TestGoldenPayloads checks the encoders against the payloads of vectors
// V4–V9 in docs/kd-protocol.md §8, their checksums against the packet headers
// there, and the golden files in testdata/payloads.
func TestGoldenPayloads(t *testing.T) {
	v5 := NewGetVersion()
	v5.SetVersion(v5Version)

	tests := []struct {
		name    string
		encode  func() []byte
		want    string // payload hex from docs/kd-protocol.md
		wantSum uint32 // checksum from the packet header there
	}{
		{"v4_getversion_request", func() []byte { m := NewGetVersion(); return m.Append(nil) },
			"46310000 0000 0000 00000000 00000000" + strings.Repeat("00", 40), 0x77},
		{"v5_getversion_reply", func() []byte { return v5.Append(nil) },
			`46310000 0000 0000 00000000 00000000
			 0f00 8025 06 02 0700 6486 0c 03 31 00 0000
			 0080c16b02f8ffff d022ee6b02f8ffff f091ef6b02f8ffff`, 0x121e},
		{"v6_read_virtual", func() []byte { m := NewReadVirtual(0xfffff8026bc18000, 16); return m.Append(nil) },
			"30310000 0000 0000 00000000 00000000 0080c16b02f8ffff 10000000 00000000" + strings.Repeat("00", 24), 0x515},
		{"v7_continue2", func() []byte {
			m := NewContinue2(Continue2Args{ContinueStatus: DbgContinue, CurrentSymbolStart: 1})
			return m.Append(nil)
		},
			`3c310000 0000 0000 00000000 00000000
			 02000100 00000000 0000000000000000 0100000000000000 0000000000000000 0000000000000000`, 0x71},
		{"v8_fileio_refusal", func() []byte { f := NewFileIORefusal(APICreateFile); return f.Append(nil) },
			"30340000 0f0000c0" + strings.Repeat("00", 56), 0x133},
		{"v9_dbgprint", func() []byte { d := NewPrintString([]byte("Hi\n")); return d.Append(nil) },
			"30320000 0000 0000 03000000 00000000 48690a", 0x120},
		{"v10_state_change", func() []byte {
			s, err := DecodeStateChange(testkit.Unhex(t, v10Payload))
			if err != nil {
				t.Fatal(err)
			}
			return s.Append(nil)
		}, v10Payload, 0x1fe6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := testkit.Unhex(t, tt.want)
			if got := payloadSum(want); got != tt.wantSum {
				t.Fatalf("checksum of the documented payload = %#x, header says %#x", got, tt.wantSum)
			}
			got := tt.encode()
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from docs/kd-protocol.md:\n got %x\nwant %x", got, want)
			}
			checkPayloadGolden(t, tt.name, got)
		})
	}
}

// TestGoldenDecode decodes the documented vectors and checks the typed view.
func TestGoldenDecode(t *testing.T) {
	m, err := DecodeManipulate(testkit.Unhex(t, `46310000 0000 0000 00000000 00000000
		0f00 8025 06 02 0700 6486 0c 03 31 00 0000
		0080c16b02f8ffff d022ee6b02f8ffff f091ef6b02f8ffff`))
	if err != nil {
		t.Fatal(err)
	}
	if m.API != APIGetVersion || m.ReturnStatus != StatusSuccess || m.Extra != nil {
		t.Errorf("V5 header: %v", m)
	}
	if got := m.Version(); got != v5Version {
		t.Errorf("V5 version:\n got %+v\nwant %+v", got, v5Version)
	}

	m, err = DecodeManipulate(testkit.Unhex(t, "30310000 0000 0000 00000000 00000000 0080c16b02f8ffff 10000000 00000000"+strings.Repeat("00", 24)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (MemoryArgs{Address: 0xfffff8026bc18000, Count: 16}); m.API != APIReadVirtualMemory || m.Memory() != want {
		t.Errorf("V6: %v %+v", m.API, m.Memory())
	}

	f, err := DecodeFileIO(testkit.Unhex(t, "30340000 0f0000c0"+strings.Repeat("00", 56)))
	if err != nil {
		t.Fatal(err)
	}
	if f.API != APICreateFile || f.Status != StatusNoSuchFile || f.CreateFile() != (CreateFileArgs{}) {
		t.Errorf("V8: %v", f)
	}

	d, err := DecodeDebugIO(testkit.Unhex(t, "30320000 0000 0000 03000000 00000000 48690a"))
	if err != nil {
		t.Fatal(err)
	}
	if d.API != APIPrintString || string(d.Text()) != "Hi\n" {
		t.Errorf("V9: %v", d)
	}
}

// TestCapturedStateChangeV10 checks every field of the captured Windows x64
// breakpoint state change and re-encodes it byte for byte.
func TestCapturedStateChangeV10(t *testing.T) {
	raw := testkit.Unhex(t, v10Payload)
	if len(raw) != StateChangeSize {
		t.Fatalf("vector is %d bytes, want %d", len(raw), StateChangeSize)
	}
	if sum := payloadSum(raw); sum != 0x1FE6 {
		t.Fatalf("checksum %#x, want 0x1FE6", sum)
	}
	s, err := DecodeStateChange(raw)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"NewState", uint64(s.NewState), StateException},
		{"ProcessorLevel", uint64(s.ProcessorLevel), 6},
		{"Processor", uint64(s.Processor), 1},
		{"NumberProcessors", uint64(s.NumberProcessors), 2},
		{"Thread", s.Thread, 0xffff8c85bc229800},
		{"ProgramCounter", s.ProgramCounter, 0xfffff802c55e3380},
		{"ExceptionCode", uint64(s.Exception.ExceptionCode), uint64(StatusBreakpoint)},
		{"ExceptionFlags", uint64(s.Exception.ExceptionFlags), 0},
		{"ExceptionRecord", s.Exception.ExceptionRecord, 0},
		{"ExceptionAddress", s.Exception.ExceptionAddress, 0xfffff802c55e3380},
		{"NumberParameters", uint64(s.Exception.NumberParameters), 1},
		{"ExceptionInformation[0]", s.Exception.ExceptionInformation[0], 0},
		{"ExceptionInformation[1]", s.Exception.ExceptionInformation[1], 0x40},
		{"ExceptionInformation[2]", s.Exception.ExceptionInformation[2], 0xfffff802c54659e0},
		{"ExceptionInformation[14]", s.Exception.ExceptionInformation[14], 0},
		{"FirstChance", uint64(s.Exception.FirstChance), 1},
		{"Dr6", s.Control.Dr6, 0xfffe0ff0},
		{"Dr7", s.Control.Dr7, 0x400},
		{"EFlags", uint64(s.Control.EFlags), 0x86},
		{"InstructionCount", uint64(s.Control.InstructionCount), 16},
		{"ReportFlags", uint64(s.Control.ReportFlags), uint64(ReportIncludesSegs | ReportStandardCS)},
		{"SegCs", uint64(s.Control.SegCs), 0x10},
		{"SegDs", uint64(s.Control.SegDs), 0x2b},
		{"SegEs", uint64(s.Control.SegEs), 0x2b},
		{"SegFs", uint64(s.Control.SegFs), 0x53},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	wantStream := testkit.Unhex(t, "ccc3cccc cccccccc 0f1f8400 00000000")
	if !bytes.Equal(s.Control.InstructionStream[:], wantStream) || !bytes.Equal(s.Control.Instructions(), wantStream) {
		t.Errorf("InstructionStream = %x, want %x", s.Control.InstructionStream, wantStream)
	}
	if s.Extra != nil || s.LoadSymbols != (LoadSymbols64{}) || s.CommandString != (CommandString64{}) {
		t.Errorf("unexpected extra data or union members: %+v", s)
	}
	if !strings.Contains(s.String(), "0x80000003 (first chance)") {
		t.Errorf("String() = %q", s.String())
	}
	if got := s.Append(nil); !bytes.Equal(got, raw) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, raw)
	}
}
