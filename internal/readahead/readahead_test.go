package readahead

import (
	"bytes"
	"errors"
	"testing"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

func reply(addr uint64, count uint32, status uint32, data []byte) kd.Manipulate {
	req := kd.NewReadVirtual(addr, count)
	return Entry{Status: status, Actual: uint32(len(data)), Data: data}.Reply(req)
}

func TestEncodeDecode(t *testing.T) {
	rep := reply(0x1000, 16, kd.StatusSuccess, sim.PatternBytes(0x1000, 16))
	stamp, got, err := Decode(Encode(42, rep.Append(nil)))
	if err != nil || stamp != 42 || !bytes.Equal(got.Append(nil), rep.Append(nil)) {
		t.Fatalf("round trip: stamp %d err %v", stamp, err)
	}
	w := kd.NewWriteVirtual(0x1000, []byte{1})
	for _, b := range [][]byte{nil, {1, 2, 3}, Encode(1, w.Append(nil)), Encode(1, make([]byte, 20))} {
		if _, _, err := Decode(b); !errors.Is(err, ErrBadFrame) {
			t.Errorf("Decode(%d bytes) = %v, want ErrBadFrame", len(b), err)
		}
	}
}

func TestInvalidates(t *testing.T) {
	read := kd.NewReadVirtual(0x1000, 16)
	write := kd.NewWriteVirtual(0x1000, []byte{1})
	ctx := kd.NewGetContext(0)
	setCtx := ctx
	setCtx.API = kd.APISetContext
	bp := read
	bp.API = kd.APIWriteBreakPoint
	cont := read
	cont.API = kd.APIContinue2
	phys := read
	phys.API = kd.APIReadPhysicalMemory
	for _, tc := range []struct {
		name string
		pt   kd.PacketType
		p    []byte
		want bool
	}{
		{"ReadVirtual", kd.TypeStateManipulate, read.Append(nil), false},
		{"WriteVirtual", kd.TypeStateManipulate, write.Append(nil), true},
		{"GetContext (a pure read: kd.DebuggerEffect)", kd.TypeStateManipulate, ctx.Append(nil), false},
		{"ReadPhysical", kd.TypeStateManipulate, phys.Append(nil), true},
		{"SetContext", kd.TypeStateManipulate, setCtx.Append(nil), true},
		{"WriteBreakPoint", kd.TypeStateManipulate, bp.Append(nil), true},
		{"Continue2", kd.TypeStateManipulate, cont.Append(nil), true},
		{"DebugIO", kd.TypeDebugIO, read.Append(nil), true},
		{"truncated", kd.TypeStateManipulate, read.Append(nil)[:20], true},
	} {
		if got := Invalidates(tc.pt, tc.p); got != tc.want {
			t.Errorf("%s: Invalidates = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCacheLookup(t *testing.T) {
	c := NewCache(8)
	put := func(addr uint64, count uint32, status uint32, n int) {
		rep := reply(addr, count, status, sim.PatternBytes(addr, n))
		c.Put(KeyOf(rep), EntryOf(rep))
	}
	put(0x1000, 100, kd.StatusSuccess, 100)    // complete
	put(0x1064, 100, kd.StatusSuccess, 100)    // complete, adjacent
	put(0x2000, 100, kd.StatusSuccess, 40)     // short read
	put(0x3000, 100, kd.StatusUnsuccessful, 0) // failure
	key := func(addr uint64, n uint32) Key { return KeyOf(kd.NewReadVirtual(addr, n)) }
	for _, tc := range []struct {
		name   string
		k      Key
		ok     bool
		status uint32
		actual uint32
	}{
		{"exact", key(0x1000, 100), true, kd.StatusSuccess, 100},
		{"inside one", key(0x1010, 20), true, kd.StatusSuccess, 20},
		{"across two", key(0x1050, 60), true, kd.StatusSuccess, 60},
		{"past the end", key(0x1050, 200), false, 0, 0},
		{"exact short read", key(0x2000, 100), true, kd.StatusSuccess, 40},
		{"inside a short read is not assumed", key(0x2000, 10), false, 0, 0},
		{"exact failure", key(0x3000, 100), true, kd.StatusUnsuccessful, 0},
		{"other processor", Key{Processor: 1, Address: 0x1000, Count: 100}, false, 0, 0},
		{"gap", key(0x0ff0, 32), false, 0, 0},
	} {
		e, ok := c.Lookup(tc.k)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v", tc.name, ok)
			continue
		}
		if !ok {
			continue
		}
		if e.Status != tc.status || e.Actual != tc.actual || len(e.Data) != int(tc.actual) {
			t.Errorf("%s: status %#x actual %d len %d", tc.name, e.Status, e.Actual, len(e.Data))
		}
		if tc.status == kd.StatusSuccess && !bytes.Equal(e.Data, sim.PatternBytes(tc.k.Address, int(tc.actual))) {
			t.Errorf("%s: wrong bytes", tc.name)
		}
	}
	c.DropBelow(0x1064)
	if _, ok := c.Lookup(key(0x1000, 100)); ok {
		t.Error("DropBelow kept an entry that ends at the limit")
	}
	if _, ok := c.Lookup(key(0x1064, 100)); !ok {
		t.Error("DropBelow dropped an entry past the limit")
	}
	for i := range 20 {
		put(0x10000+uint64(i)*100, 100, kd.StatusSuccess, 100)
	}
	if c.Len() > 8 {
		t.Errorf("cache holds %d entries, limit 8", c.Len())
	}
	c.Clear()
	if c.Len() != 0 {
		t.Error("Clear left entries")
	}
}

// FuzzDecode checks that Decode never panics and that what it accepts
// encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	rep := reply(0x1000, 16, kd.StatusSuccess, sim.PatternBytes(0x1000, 16))
	f.Add(Encode(7, rep.Append(nil)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		stamp, m, err := Decode(b)
		if err != nil {
			return
		}
		// Everything but the padding word at offset 12 (encoded as zero)
		// survives a round trip.
		again := Encode(stamp, m.Append(nil))
		if !bytes.Equal(again[:StampSize+12], b[:StampSize+12]) || !bytes.Equal(again[StampSize+16:], b[StampSize+16:]) {
			t.Fatalf("re-encoding changed the frame")
		}
		c := NewCache(4)
		c.Put(KeyOf(m), EntryOf(m))
		if _, ok := c.Lookup(KeyOf(m)); !ok {
			t.Fatal("an entry just stored is not found")
		}
	})
}
