package client

import (
	"testing"

	"kdsrv/internal/kd"
	"kdsrv/internal/readahead"
)

// TestBridgeReadAheadFreshness checks the bridge half of read-ahead: a push
// is used only while no invalidating packet went out since the server
// issued it, and state changes clear what was kept.
func TestBridgeReadAheadFreshness(t *testing.T) {
	data := make([]byte, 16)
	for i := range data {
		data[i] = byte(i)
	}
	req := kd.NewReadVirtual(0x1000, 16)
	rep := readahead.Entry{Status: kd.StatusSuccess, Actual: 16, Data: data}.Reply(req)
	push := func(ra *bridgeReadAhead, stamp uint32) {
		t.Helper()
		consumed, err := ra.fromServer(readahead.PacketType, readahead.Encode(stamp, rep.Append(nil)))
		if !consumed || err != nil {
			t.Fatalf("push not consumed: %v", err)
		}
	}
	read := kd.Packet{Type: kd.TypeStateManipulate, Payload: req.Append(nil)}
	write := kd.NewWriteVirtual(0x1008, []byte{0xff})
	writePkt := kd.Packet{Type: kd.TypeStateManipulate, Payload: write.Append(nil)}

	for _, tc := range []struct {
		name    string
		steps   func(ra *bridgeReadAhead)
		wantHit bool
	}{
		{"current push is used", func(ra *bridgeReadAhead) { push(ra, 0) }, true},
		{"write after the push drops it", func(ra *bridgeReadAhead) {
			push(ra, 0)
			ra.fromDebugger(writePkt)
		}, false},
		{"push issued before the write is stale", func(ra *bridgeReadAhead) {
			ra.fromDebugger(writePkt)
			push(ra, 0)
		}, false},
		{"push issued after the write is used", func(ra *bridgeReadAhead) {
			ra.fromDebugger(writePkt)
			push(ra, 1)
		}, true},
		{"state change clears", func(ra *bridgeReadAhead) {
			push(ra, 0)
			if consumed, _ := ra.fromServer(uint16(kd.TypeStateChange64), make([]byte, 8)); consumed {
				t.Fatal("a state change was taken for a push")
			}
		}, false},
		{"state notice clears", func(ra *bridgeReadAhead) {
			push(ra, 0)
			ra.clear()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
			tc.steps(ra)
			sent := ra.sent
			reply, hint := ra.fromDebugger(read)
			if (reply != nil) != tc.wantHit {
				t.Fatalf("hit = %v, want %v", reply != nil, tc.wantHit)
			}
			if !tc.wantHit {
				return
			}
			got, err := kd.DecodeManipulate(reply)
			if err != nil || string(got.Extra) != string(data) || got.Memory().Actual != 16 {
				t.Fatalf("reply %v %v", got, err)
			}
			stamp, h, err := readahead.Decode(hint)
			if err != nil || stamp != sent || h.Memory().Address != 0x1000 {
				t.Fatalf("hint stamp %d (want %d), address %#x, %v", stamp, sent, h.Memory().Address, err)
			}
		})
	}
}
