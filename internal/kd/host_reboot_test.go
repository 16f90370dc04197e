package kd

import (
	"context"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// A halted target that answered a RESET re-sends its state change, and the
// Host skips that copy. But a target that reboots meanwhile starts its
// streams afresh (sync bit), and its first stop is news even when its bytes
// equal the last one's: the RESET's flag must not swallow it.
func TestHostRebootStopIsNewAfterReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		h := NewHost(NewHostLink(a, Config{}), HostOptions{})
		defer h.Link().Close()
		go io.Copy(io.Discard, b) // the host's ACKs
		b.SetWriteDeadline(time.Now().Add(time.Minute))
		sc := StateChange{NewState: StateException, Processor: 0, NumberProcessors: 1, ProgramCounter: 0xfffff80000001000}
		payload := sc.Append(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		b.Write(AppendPacket(nil, Packet{Type: TypeStateChange64, ID: InitialPacketID | SyncPacketID, Payload: payload}))
		if _, err := h.WaitStateChange(ctx); err != nil {
			t.Fatal(err)
		}
		// The target answers a RESET: its next copy of the stop is a repeat.
		b.Write(AppendPacket(nil, Packet{Type: TypeReset}))
		synctest.Wait()
		// Instead it reboots, and stops again where it stopped before.
		b.Write(AppendPacket(nil, Packet{Type: TypeStateChange64, ID: InitialPacketID | SyncPacketID, Payload: payload}))
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if _, err := h.WaitStateChange(wctx); err != nil {
			t.Fatalf("the rebooted target's first stop was not reported: %v", err)
		}
	})
}
