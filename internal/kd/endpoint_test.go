package kd

import (
	"reflect"
	"testing"
)

// TestStatsArithmetic checks that Snapshot, Add and Sub cover every field
// of Stats, so a counter added later cannot be forgotten by one of them.
func TestStatsArithmetic(t *testing.T) {
	n := reflect.TypeFor[Stats]().NumField()
	var s Stats
	if got := len(s.fields()); got != n {
		t.Fatalf("Stats has %d fields, fields() lists %d", n, got)
	}
	if got := reflect.TypeFor[Counters]().NumField(); got != n {
		t.Fatalf("Stats has %d fields, Counters %d", n, got)
	}
	var c Counters
	for i, f := range c.fields() {
		f.Add(uint64(i + 1))
	}
	snap := c.Snapshot()
	v := reflect.ValueOf(snap)
	for i := range n {
		if got := v.Field(i).Uint(); got != uint64(i+1) {
			t.Errorf("Snapshot().%s = %d, want %d", v.Type().Field(i).Name, got, i+1)
		}
	}
	sum := snap.Add(snap)
	v = reflect.ValueOf(sum)
	for i := range n {
		if got := v.Field(i).Uint(); got != 2*uint64(i+1) {
			t.Errorf("Add: %s = %d, want %d", v.Type().Field(i).Name, got, 2*(i+1))
		}
	}
	if d := sum.Sub(snap); d != snap {
		t.Errorf("Sub = %+v, want %+v", d, snap)
	}
}

func TestResumes(t *testing.T) {
	req := func(api APINumber) []byte {
		m := Manipulate{API: api}
		return m.Append(nil)
	}
	tests := []struct {
		name    string
		typ     PacketType
		payload []byte
		want    bool
	}{
		{"continue", TypeStateManipulate, req(APIContinue), true},
		{"continue2", TypeStateManipulate, req(APIContinue2), true},
		{"reboot", TypeStateManipulate, req(APIReboot), true},
		{"read", TypeStateManipulate, req(APIReadVirtualMemory), false},
		{"get version", TypeStateManipulate, req(APIGetVersion), false},
		{"continue number in a debug print", TypeDebugIO, req(APIContinue2), false},
		{"short", TypeStateManipulate, []byte{0x3c, 0x31}, false},
		{"empty", TypeStateManipulate, nil, false},
	}
	for _, tt := range tests {
		if got := Resumes(tt.typ, tt.payload); got != tt.want {
			t.Errorf("%s: Resumes = %v, want %v", tt.name, got, tt.want)
		}
	}
}
