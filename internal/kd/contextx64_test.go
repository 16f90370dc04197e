package kd

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fullContext sets every field to a value derived from its offset, so a
// field written at the wrong place shows up in TestContextX64Offsets.
func fullContext() ContextX64 {
	v := func(off uint64) uint64 { return 0xC0DE000000000000 | off }
	c := ContextX64{
		P1Home: v(0x00), P2Home: v(0x08), P3Home: v(0x10), P4Home: v(0x18), P5Home: v(0x20), P6Home: v(0x28),
		ContextFlags: ContextAll, MxCsr: 0x1F80,
		SegCs: 0x0010, SegDs: 0x002B, SegEs: 0x002B, SegFs: 0x0053, SegGs: 0x002B, SegSs: 0x0018,
		EFlags: 0x00000202,
		Dr0:    v(0x48), Dr1: v(0x50), Dr2: v(0x58), Dr3: v(0x60), Dr6: v(0x68), Dr7: v(0x70),
		Rax: v(0x78), Rcx: v(0x80), Rdx: v(0x88), Rbx: v(0x90), Rsp: v(0x98), Rbp: v(0xA0), Rsi: v(0xA8), Rdi: v(0xB0),
		R8: v(0xB8), R9: v(0xC0), R10: v(0xC8), R11: v(0xD0), R12: v(0xD8), R13: v(0xE0), R14: v(0xE8), R15: v(0xF0),
		Rip:           v(0xF8),
		VectorControl: v(0x4A0), DebugControl: v(0x4A8),
		LastBranchToRip: v(0x4B0), LastBranchFromRip: v(0x4B8),
		LastExceptionToRip: v(0x4C0), LastExceptionFromRip: v(0x4C8),
	}
	for i := range c.FltSave {
		c.FltSave[i] = byte(i*7 + 1)
	}
	for i := range c.VectorRegister {
		for j := range c.VectorRegister[i] {
			c.VectorRegister[i][j] = byte(0x80 + i)
		}
	}
	return c
}

func TestContextX64Offsets(t *testing.T) {
	c := fullContext()
	b := c.Encode()
	if len(b) != ContextX64Size || ContextX64Size != 0x4D0 || !bytes.Equal(c.Append(nil), b) {
		t.Fatalf("encoded %d bytes, want 1232", len(b))
	}
	fs := []field{
		{"ContextFlags", 0x30, 4, 0x10001F},
		{"MxCsr", 0x34, 4, 0x1F80},
		{"SegCs", 0x38, 2, 0x10},
		{"SegDs", 0x3A, 2, 0x2B},
		{"SegEs", 0x3C, 2, 0x2B},
		{"SegFs", 0x3E, 2, 0x53},
		{"SegGs", 0x40, 2, 0x2B},
		{"SegSs", 0x42, 2, 0x18},
		{"EFlags", 0x44, 4, 0x202},
	}
	// Every u64 field carries its own offset.
	for _, off := range []int{
		0x00, 0x08, 0x10, 0x18, 0x20, 0x28, // P1Home..P6Home
		0x48, 0x50, 0x58, 0x60, 0x68, 0x70, // Dr0..Dr3, Dr6, Dr7
		0x78, 0x80, 0x88, 0x90, 0x98, 0xA0, 0xA8, 0xB0, // Rax..Rdi
		0xB8, 0xC0, 0xC8, 0xD0, 0xD8, 0xE0, 0xE8, 0xF0, 0xF8, // R8..R15, Rip
		0x4A0, 0x4A8, 0x4B0, 0x4B8, 0x4C0, 0x4C8,
	} {
		fs = append(fs, field{"u64", off, 8, 0xC0DE000000000000 | uint64(off)})
	}
	contextX64Codec.layout(t, c, fs)
	if !bytes.Equal(b[0x100:0x300], c.FltSave[:]) {
		t.Error("FltSave not at 0x100")
	}
	for i := range c.VectorRegister {
		if !bytes.Equal(b[0x300+16*i:0x310+16*i], c.VectorRegister[i][:]) {
			t.Errorf("VectorRegister[%d] not at %#x", i, 0x300+16*i)
		}
	}
	if !bytes.Equal(c.Xmm(0), b[0x1A0:0x1B0]) || !bytes.Equal(c.Xmm(15), b[0x290:0x2A0]) || c.Xmm(16) != nil {
		t.Error("Xmm registers not at 0x1A0..0x2A0")
	}
	got, err := DecodeContextX64(append(b, 0xEE)) // trailing bytes are ignored
	if err != nil || !cmp.Equal(c, got) {
		t.Errorf("with a trailing byte: %v\n%s", err, cmp.Diff(c, got))
	}
	if c.Append([]byte{1, 2})[2] != b[0] {
		t.Error("Append does not append after dst")
	}
}

func TestContextFlags(t *testing.T) {
	if ContextFull != 0x10000B || ContextAll != 0x10001F || ContextControl != 0x100001 ||
		ContextInteger != 0x100002 || ContextSegments != 0x100004 || ContextFloatingPoint != 0x100008 ||
		ContextDebugRegisters != 0x100010 {
		t.Error("ContextFlags constants drifted from docs/kd-protocol.md §7")
	}
}

func TestContextRegisters(t *testing.T) {
	c := fullContext()
	want := []NamedReg{
		{"rax", c.Rax, 64}, {"rbx", c.Rbx, 64}, {"rcx", c.Rcx, 64}, {"rdx", c.Rdx, 64},
		{"rsi", c.Rsi, 64}, {"rdi", c.Rdi, 64}, {"rip", c.Rip, 64}, {"rsp", c.Rsp, 64}, {"rbp", c.Rbp, 64},
		{"r8", c.R8, 64}, {"r9", c.R9, 64}, {"r10", c.R10, 64}, {"r11", c.R11, 64},
		{"r12", c.R12, 64}, {"r13", c.R13, 64}, {"r14", c.R14, 64}, {"r15", c.R15, 64},
		{"efl", 0x202, 32}, {"cs", 0x10, 16}, {"ss", 0x18, 16}, {"ds", 0x2B, 16},
		{"es", 0x2B, 16}, {"fs", 0x53, 16}, {"gs", 0x2B, 16},
	}
	if diff := cmp.Diff(want, c.Registers()); diff != "" {
		t.Errorf("Registers() (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		set  uint64
		want uint64
	}{
		{"RAX", 0x1111, 0x1111},
		{"r15", 0x2222, 0x2222},
		{"rip", 0xfffff80000001000, 0xfffff80000001000},
		{"eflags", 0x1_0000_0246, 0x246},
		{"efl", 0x202, 0x202},
		{"cs", 0x12345, 0x2345},
		{"dr7", 0x400, 0x400},
	}
	for _, tt := range tests {
		if !c.SetRegister(tt.name, tt.set) {
			t.Errorf("SetRegister(%q) unknown", tt.name)
		}
		if got, ok := c.Register(tt.name); !ok || got != tt.want {
			t.Errorf("Register(%q) = %#x, %v; want %#x", tt.name, got, ok, tt.want)
		}
	}
	if c.Rax != 0x1111 || c.SegCs != 0x2345 || c.Dr7 != 0x400 {
		t.Error("SetRegister did not reach the struct fields")
	}
	if _, ok := c.Register("xmm0"); ok || c.SetRegister("bogus", 1) {
		t.Error("unknown register accepted")
	}
}

func FuzzDecodeContextX64(f *testing.F) {
	c := fullContext()
	f.Add(c.Encode())
	f.Add(make([]byte, ContextX64Size))
	f.Add(make([]byte, ContextX64Size-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, ok := contextX64Codec.fuzz(t, b); ok {
			_ = c.Registers()
		}
	})
}

// TestRegisterNames reads every register by name from a context whose
// fields all differ, so a name paired with the wrong field fails.
func TestRegisterNames(t *testing.T) {
	c := fullContext()
	c.SegDs, c.SegEs, c.SegFs, c.SegGs = 0x21, 0x22, 0x23, 0x24 // all differ
	want := map[string]uint64{
		"rax": c.Rax, "rcx": c.Rcx, "rdx": c.Rdx, "rbx": c.Rbx, "rsp": c.Rsp, "rbp": c.Rbp, "rsi": c.Rsi, "rdi": c.Rdi,
		"r8": c.R8, "r9": c.R9, "r10": c.R10, "r11": c.R11, "r12": c.R12, "r13": c.R13, "r14": c.R14, "r15": c.R15,
		"rip": c.Rip, "dr0": c.Dr0, "dr1": c.Dr1, "dr2": c.Dr2, "dr3": c.Dr3, "dr6": c.Dr6, "dr7": c.Dr7,
		"cs": uint64(c.SegCs), "ds": uint64(c.SegDs), "es": uint64(c.SegEs), "fs": uint64(c.SegFs),
		"gs": uint64(c.SegGs), "ss": uint64(c.SegSs), "efl": uint64(c.EFlags), "EFLAGS": uint64(c.EFlags),
	}
	for name, v := range want {
		if got, ok := c.Register(name); !ok || got != v {
			t.Errorf("Register(%q) = %#x, %v; want %#x", name, got, ok, v)
		}
	}
}
