package sim

import (
	"context"
	"encoding/binary"
	"net"
	"testing"
	"unicode/utf16"

	"kdsrv/internal/kd"
)

// walkModules walks PsLoadedModuleList the way a debugger does: from the
// KDBG block's list head through each entry, reading both names and the
// PE header at each DllBase.
func walkModules(ctx context.Context, t *testing.T, h *kd.Host) []Module {
	t.Helper()
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := h.ReadVirtual(ctx, v.DebuggerDataList, 8)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := h.ReadVirtual(ctx, le64(head), kd.DebuggerDataSize)
	if err != nil {
		t.Fatal(err)
	}
	dd, err := kd.DecodeDebuggerData(blk)
	if err != nil || dd.PsLoadedModuleList != v.PsLoadedModuleList {
		t.Fatalf("KDBG PsLoadedModuleList %#x, GetVersion %#x (%v)", dd.PsLoadedModuleList, v.PsLoadedModuleList, err)
	}
	ustr := func(b []byte) string {
		n := binary.LittleEndian.Uint16(b)
		s, err := h.ReadVirtual(ctx, le64(b[8:]), int(n))
		if err != nil || len(s) != int(n) {
			t.Fatalf("name at %#x: %d bytes, %v", le64(b[8:]), len(s), err)
		}
		u := make([]uint16, n/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(s[2*i:])
		}
		return string(utf16.Decode(u))
	}
	var mods []Module
	lh, err := h.ReadVirtual(ctx, dd.PsLoadedModuleList, 16)
	if err != nil {
		t.Fatal(err)
	}
	prev := dd.PsLoadedModuleList
	for e := le64(lh); e != dd.PsLoadedModuleList; {
		if len(mods) > 2*Modules {
			t.Fatal("the module list does not return to its head")
		}
		b, err := h.ReadVirtual(ctx, e, int(LdrEntrySize))
		if err != nil || len(b) != int(LdrEntrySize) {
			t.Fatalf("entry %#x: %v", e, err)
		}
		if le64(b[8:]) != prev {
			t.Fatalf("entry %#x: Blink %#x, want %#x", e, le64(b[8:]), prev)
		}
		m := Module{Entry: e, Base: le64(b[LdrDllBase:]), EntryPoint: le64(b[LdrEntryPoint:]),
			Size: binary.LittleEndian.Uint32(b[LdrSizeOfImage:]),
			Path: ustr(b[LdrFullDllName:]), Name: ustr(b[LdrBaseDllName:])}
		pe, err := h.ReadVirtual(ctx, m.Base, PEHeaderSize)
		if err != nil || len(pe) != PEHeaderSize {
			t.Fatalf("%s: PE header at %#x: %v", m.Name, m.Base, err)
		}
		off := binary.LittleEndian.Uint32(pe[0x3C:])
		opt := pe[off+0x18:]
		if string(pe[:2]) != "MZ" || string(pe[off:off+4]) != "PE\x00\x00" ||
			binary.LittleEndian.Uint16(pe[off+4:]) != 0x8664 || binary.LittleEndian.Uint16(opt) != 0x20B ||
			binary.LittleEndian.Uint32(opt[0x38:]) != m.Size || le64(opt[0x18:]) != m.Base ||
			m.Base+uint64(binary.LittleEndian.Uint32(opt[0x10:])) != m.EntryPoint {
			t.Fatalf("%s: PE header does not match its list entry %+v", m.Name, m)
		}
		mods = append(mods, m)
		prev, e = e, le64(b)
	}
	if le64(lh[8:]) != prev {
		t.Fatalf("list head Blink %#x, last entry %#x", le64(lh[8:]), prev)
	}
	return mods
}

func TestModuleListWalk(t *testing.T) {
	ctx := ctxT(t)
	tgt := New(Config{Build: 18362})
	a, b := net.Pipe()
	serve(t, tgt, a)
	h := newHost(t, b, kd.HostOptions{})
	if _, err := h.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		got := walkModules(ctx, t, h)
		want := tgt.Modules()
		if len(got) != Modules || len(want) != Modules {
			t.Fatalf("walked %d modules, the target has %d, want %d", len(got), len(want), Modules)
		}
		kb := tgt.Layout().KernBase
		if got[0].Name != "ntoskrnl.exe" || got[0].Base != kb || got[1].Name != "hal.dll" {
			t.Fatalf("first modules %+v %+v, KernBase %#x", got[0], got[1], kb)
		}
		seen := map[string]bool{}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("module %d: walked %+v, target %+v", i, got[i], want[i])
			}
			if seen[got[i].Name] {
				t.Fatalf("module name %s twice", got[i].Name)
			}
			seen[got[i].Name] = true
			if i > 0 && (got[i].Base < got[i-1].Base+uint64(got[i-1].Size) || got[i].Base < kb+KernSize) {
				t.Fatalf("module %s at %#x overlaps the one before", got[i].Name, got[i].Base)
			}
		}
	}
	check()
	old := tgt.Layout().KernBase
	// A new boot loads everything elsewhere; the debugger finds it again.
	tgt.Reboot()
	if _, err := h.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	if tgt.Layout().KernBase == old {
		t.Fatal("the kernel did not move")
	}
	check()
}
