package kd

import "testing"

func TestDebuggerEffect(t *testing.T) {
	read := NewReadVirtual(0x1000, 16)
	for _, tc := range []struct {
		name string
		pt   PacketType
		p    []byte
		want Effect
	}{
		{"ReadVirtual", TypeStateManipulate, read.Append(nil), EffectPureRead},
		{"GetVersion", TypeStateManipulate, manip(NewGetVersion()), EffectPureRead},
		{"GetContext", TypeStateManipulate, manip(NewGetContext(0)), EffectPureRead},
		{"GetContextEx", TypeStateManipulate, manip(NewGetContextEx(0, 0, 16)), EffectPureRead},
		{"ReadControlSpace", TypeStateManipulate, manip(NewReadControlSpace(0, 2, 8)), EffectPureRead},
		{"QueryMemory", TypeStateManipulate, manip(NewQueryMemory(0x1000)), EffectHarmlessRead},
		{"ReadPhysical", TypeStateManipulate, manip(NewReadPhysical(0x1000, 8)), EffectChanges},
		{"ReadIOSpace", TypeStateManipulate, manip(NewReadIOSpace(0x60, 1)), EffectChanges},
		{"ReadMSR", TypeStateManipulate, manip(NewReadMSR(0, 0x10)), EffectChanges},
		{"WriteVirtual", TypeStateManipulate, manip(NewWriteVirtual(0x1000, []byte{1})), EffectChanges},
		{"SetContext", TypeStateManipulate, manip(NewSetContext(0, 0x10001F, make([]byte, 16))), EffectChanges},
		{"WriteBreakPoint", TypeStateManipulate, manip(NewWriteBreakPoint(0x1000)), EffectChanges},
		{"Continue2", TypeStateManipulate, manip(NewContinue2(Continue2Args{ContinueStatus: DbgContinue})), EffectChanges},
		{"Reboot", TypeStateManipulate, manip(NewReboot()), EffectChanges},
		{"unknown API", TypeStateManipulate, manip(Manipulate{API: 0x3163}), EffectChanges},
		{"DebugIO", TypeDebugIO, read.Append(nil), EffectChanges},
		{"truncated", TypeStateManipulate, read.Append(nil)[:20], EffectChanges},
	} {
		if got := DebuggerEffect(tc.pt, tc.p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func manip(m Manipulate) []byte { return m.Append(nil) }
