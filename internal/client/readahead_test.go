package client

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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
		consumed, _, _, err := ra.fromServer(readahead.PacketType, readahead.Encode(stamp, rep.Append(nil)))
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
			if consumed, _, _, _ := ra.fromServer(uint16(kd.TypeStateChange64), make([]byte, 8)); consumed {
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
			reply, hint, _ := ra.fromDebugger(read)
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

// chunk returns a 16-byte ReadVirtual request at addr and the target's
// reply to it.
func chunk(addr uint64) (req, rep kd.Manipulate) {
	data := make([]byte, 16)
	for i := range data {
		data[i] = byte(addr) + byte(i)
	}
	req = kd.NewReadVirtual(addr, 16)
	return req, readahead.Entry{Status: kd.StatusSuccess, Actual: 16, Data: data}.Reply(req)
}

// A read that went to the server because the debugger had caught up with
// the pushes is answered by the push that brings its data, as soon as it
// arrives, rather than by the server's reply queued behind the pushes; that
// reply is dropped when it comes. A push for other data, a stale push, or
// another request from the debugger in between do not answer it.
func TestBridgeReadAheadEarlyAnswer(t *testing.T) {
	req1, rep1 := chunk(0x1000)
	_, rep2 := chunk(0x2000)
	readPkt := kd.Packet{Type: kd.TypeStateManipulate, Payload: req1.Append(nil)}
	pushOf := func(stamp uint32, rep kd.Manipulate) []byte { return readahead.Encode(stamp, rep.Append(nil)) }

	t.Run("answered by the push, late reply dropped", func(t *testing.T) {
		ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
		if reply, _, _ := ra.fromDebugger(readPkt); reply != nil {
			t.Fatal("hit in an empty cache")
		}
		if _, answer, _, _ := ra.fromServer(readahead.PacketType, pushOf(0, rep2)); answer != nil {
			t.Fatal("a push of other data answered the read")
		}
		consumed, answer, _, err := ra.fromServer(readahead.PacketType, pushOf(0, rep1))
		if !consumed || err != nil || answer == nil {
			t.Fatalf("push of the waiting read's data: consumed %v answer %v err %v", consumed, answer != nil, err)
		}
		got, err := kd.DecodeManipulate(answer)
		if err != nil || got.API != kd.APIReadVirtualMemory || got.Memory().Address != 0x1000 || string(got.Extra) != string(rep1.Extra) {
			t.Fatalf("early answer %+v %v", got, err)
		}
		if consumed, answer, _, _ := ra.fromServer(uint16(kd.TypeStateManipulate), rep1.Append(nil)); !consumed || answer != nil {
			t.Fatal("the server's late reply was passed on: the debugger would get two replies")
		}
		// The next reply is a new one: passed on.
		if consumed, _, _, _ := ra.fromServer(uint16(kd.TypeStateManipulate), rep1.Append(nil)); consumed {
			t.Fatal("a second reply for the same read was dropped")
		}
		if ra.stats.Early != 1 {
			t.Fatalf("Early = %d", ra.stats.Early)
		}
	})
	t.Run("the server answered first", func(t *testing.T) {
		ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
		ra.fromDebugger(readPkt)
		if consumed, _, _, _ := ra.fromServer(uint16(kd.TypeStateManipulate), rep1.Append(nil)); consumed {
			t.Fatal("the server's reply was dropped")
		}
		if _, answer, _, _ := ra.fromServer(readahead.PacketType, pushOf(0, rep1)); answer != nil {
			t.Fatal("a push answered a read that already had its reply")
		}
	})
	t.Run("stale push", func(t *testing.T) {
		ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
		ra.fromDebugger(readPkt)
		if _, answer, _, _ := ra.fromServer(readahead.PacketType, pushOf(7, rep1)); answer != nil {
			t.Fatal("a stale push answered the read")
		}
	})
	t.Run("state change in between", func(t *testing.T) {
		ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
		ra.fromDebugger(readPkt)
		ra.fromServer(uint16(kd.TypeStateChange64), make([]byte, 8))
		if _, answer, _, _ := ra.fromServer(readahead.PacketType, pushOf(0, rep1)); answer != nil {
			t.Fatal("a push answered a read from before a state change")
		}
	})
}

// A read at the edge of the pushed data, while pushes are arriving, is held
// for the push on its way instead of going to the server (which would send
// the same data twice): the push answers it, with a hint for the server.
// If no push comes within holdFor, or the target moves, the read goes to
// the server after all.
func TestBridgeReadAheadHoldAtTheEdge(t *testing.T) {
	_, rep1 := chunk(0x1000)
	req2, rep2 := chunk(0x1010)
	read2 := kd.Packet{Type: kd.TypeStateManipulate, Payload: req2.Append(nil)}
	pushOf := func(rep kd.Manipulate) []byte { return readahead.Encode(0, rep.Append(nil)) }
	start := func(t *testing.T) (*bridgeReadAhead, *atomic.Int32) {
		ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
		ra.fromServer(readahead.PacketType, pushOf(rep1)) // the stream so far ends at 0x1010
		reply, _, hold := ra.fromDebugger(read2)
		if reply != nil || !hold {
			t.Fatalf("a read at the edge of the pushes: reply %v, hold %v", reply != nil, hold)
		}
		sent := new(atomic.Int32)
		ra.armHold(func() { sent.Add(1) })
		t.Cleanup(ra.stop)
		return ra, sent
	}
	t.Run("answered by the push", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ra, sent := start(t)
			consumed, answer, hint, err := ra.fromServer(readahead.PacketType, pushOf(rep2))
			if !consumed || answer == nil || hint == nil || err != nil {
				t.Fatalf("consumed %v answer %v hint %v err %v", consumed, answer != nil, hint != nil, err)
			}
			if _, h, err := readahead.Decode(hint); err != nil || h.Memory().Address != 0x1010 {
				t.Fatalf("hint %+v %v", h, err)
			}
			time.Sleep(2 * holdFor)
			synctest.Wait()
			if sent.Load() != 0 || len(ra.late) != 0 {
				t.Fatalf("the answered read went to the server too (sent %d, late %d)", sent.Load(), len(ra.late))
			}
		})
	})
	t.Run("no push comes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, sent := start(t)
			time.Sleep(holdFor / 2)
			synctest.Wait()
			if sent.Load() != 0 {
				t.Fatal("sent before holdFor")
			}
			time.Sleep(holdFor)
			synctest.Wait()
			if sent.Load() != 1 {
				t.Fatalf("sent %d times after holdFor, want 1", sent.Load())
			}
		})
	})
	t.Run("the target moves", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ra, sent := start(t)
			ra.fromServer(uint16(kd.TypeStateChange64), make([]byte, 8))
			synctest.Wait()
			if sent.Load() != 1 {
				t.Fatalf("sent %d times after a state change, want 1 at once", sent.Load())
			}
		})
	})
	t.Run("no hold without a recent push", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ra := &bridgeReadAhead{cache: readahead.NewCache(bridgeCacheEntries)}
			ra.fromServer(readahead.PacketType, pushOf(rep1))
			time.Sleep(2 * holdFor)
			if _, _, hold := ra.fromDebugger(read2); hold {
				t.Fatal("held although the pushes stopped")
			}
		})
	})
}
