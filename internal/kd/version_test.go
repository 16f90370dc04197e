package kd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVersionOffsets(t *testing.T) {
	v := Version{
		MajorVersion: 0x0102, MinorVersion: 0x0304, ProtocolVersion: 0x05, KdSecondaryVersion: 0x06,
		Flags: 0x0708, MachineType: 0x090A, MaxPacketType: 0x0B, MaxStateChange: 0x0C, MaxManipulate: 0x0D,
		Simulation: 0x0E, Unused: 0x0F10, KernBase: 0x1112131415161718, PsLoadedModuleList: 0x2122232425262728,
		DebuggerDataList: 0x3132333435363738,
	}
	b := versionCodec.layout(t, v, []field{
		{"MajorVersion", 0, 2, 0x0102},
		{"MinorVersion", 2, 2, 0x0304},
		{"ProtocolVersion", 4, 1, 0x05},
		{"KdSecondaryVersion", 5, 1, 0x06},
		{"Flags", 6, 2, 0x0708},
		{"MachineType", 8, 2, 0x090A},
		{"MaxPacketType", 10, 1, 0x0B},
		{"MaxStateChange", 11, 1, 0x0C},
		{"MaxManipulate", 12, 1, 0x0D},
		{"Simulation", 13, 1, 0x0E},
		{"Unused", 14, 2, 0x0F10},
		{"KernBase", 16, 8, 0x1112131415161718},
		{"PsLoadedModuleList", 24, 8, 0x2122232425262728},
		{"DebuggerDataList", 32, 8, 0x3132333435363738},
	})
	if len(b) != VersionSize || !bytes.Equal(v.Encode(), b) {
		t.Fatalf("Encode gave %d bytes, want the %d of Append", len(v.Encode()), VersionSize)
	}
}

func TestVersionConstants(t *testing.T) {
	if VersionFlagMP != 1 || VersionFlagData != 2 || VersionFlagPtr64 != 4 || VersionFlagNoMM != 8 ||
		VersionFlagHSS != 0x10 || VersionFlagPartitions != 0x20 {
		t.Error("version flags drifted from docs/kd-protocol.md §5")
	}
	if MachineAMD64 != 0x8664 || MachineI386 != 0x14C || MachineARM64 != 0xAA64 {
		t.Error("machine types drifted")
	}
	if v5Version.MaxStateChange != 3 || v5Version.MaxManipulate != 0x31 || v5Version.MaxPacketType != 12 {
		t.Errorf("derived maxima: %+v", v5Version)
	}
	if got := v5Version.String(); got != "build 9600 free x64 protocol 6.2 flags 0x7" {
		t.Errorf("String() = %q", got)
	}
}

func TestDebuggerData(t *testing.T) {
	d := DebuggerData{
		ListFlink: 0xfffff8026bef91f0, ListBlink: 0xfffff8026bef91f0,
		KernBase: 0xfffff8026bc18000, PaeEnabled: true,
		PsLoadedModuleList: 0xfffff8026bee22d0, PsActiveProcessHead: 0xfffff8026bee1000,
		CmNtCSDVersion: 0xfffff8026bee3000,
	}
	b := BuildDebuggerData(d)
	if len(b) != DebuggerDataSize {
		t.Fatalf("block is %d bytes, want %#x", len(b), DebuggerDataSize)
	}
	if !bytes.Equal(b[0x10:0x14], []byte("KDBG")) {
		t.Errorf("owner tag bytes = %q", b[0x10:0x14])
	}
	checkFields(t, b, []field{
		{"List.Flink", 0x00, 8, 0xfffff8026bef91f0},
		{"List.Blink", 0x08, 8, 0xfffff8026bef91f0},
		{"OwnerTag", 0x10, 4, 0x4742444B},
		{"Size", 0x14, 4, 0x368},
		{"KernBase", 0x18, 8, 0xfffff8026bc18000},
		{"PaeEnabled", 0x36, 2, 1},
		{"PsLoadedModuleList", 0x48, 8, 0xfffff8026bee22d0},
		{"PsActiveProcessHead", 0x50, 8, 0xfffff8026bee1000},
		{"CmNtCSDVersion", 0x268, 8, 0xfffff8026bee3000},
	})
	got, err := DecodeDebuggerData(b)
	d.Size = DebuggerDataSize
	if err != nil || got != d {
		t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, d, err)
	}

	for _, tt := range []struct {
		size uint32
		n    int
	}{{0x100, 0x270}, {0x400, 0x400}, {0xFFFFFFFF, 4096}} {
		if n := len(BuildDebuggerData(DebuggerData{Size: tt.size})); n != tt.n {
			t.Errorf("Size %#x: block is %#x bytes, want %#x", tt.size, n, tt.n)
		}
	}

	bad := bytes.Clone(b)
	copy(bad[0x10:], "XXXX")
	if _, err := DecodeDebuggerData(bad); err == nil || !strings.Contains(err.Error(), "KDBG") {
		t.Errorf("bad tag: err = %v", err)
	}
	if _, err := DecodeDebuggerData(b[:0x26F]); !errors.Is(err, ErrPayloadTooShort) {
		t.Errorf("short block: err = %v", err)
	}
}

func FuzzDecodeVersion(f *testing.F) {
	f.Add(v5Version.Encode())
	f.Add(make([]byte, VersionSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, ok := versionCodec.fuzz(t, b); ok {
			_ = v.String()
		}
	})
}

func FuzzDecodeDebuggerData(f *testing.F) {
	f.Add(BuildDebuggerData(DebuggerData{KernBase: 0xfffff8026bc18000}))
	f.Add(make([]byte, 0x270))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDebuggerData(b)
		if err != nil {
			return
		}
		d2, err := DecodeDebuggerData(BuildDebuggerData(d))
		if d.Size == 0 {
			d.Size = DebuggerDataSize // BuildDebuggerData's documented default
		}
		if err != nil || d2 != d {
			t.Fatalf("unstable (%v):\n%s", err, cmp.Diff(d, d2))
		}
	})
}
