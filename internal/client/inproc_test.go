package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"kdsrv/internal/kd"
)

// The in-process link delivers in order, answers a RESET at once on the
// host end and hands it to the target end with its sequence number,
// reports the RESETs sent before a packet (SendEpoch), fails a bounded send
// to an inbox nobody reads instead of waiting, and ends both ends on Close.
func TestInprocPair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host, target := inprocPair(nil)
	if host.Role() != kd.RoleHost || target.Role() != kd.RoleTarget {
		t.Fatal("roles")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(host.SendBreakIn())
	must(host.SendReset())
	must(host.Send(ctx, kd.TypeStateManipulate, []byte("request")))
	for _, want := range []string{"break-in", "reset 1", "packet request"} {
		m, err := target.Recv(ctx)
		must(err)
		got := ""
		switch m.Kind {
		case kd.MsgBreakIn:
			got = "break-in"
		case kd.MsgReset:
			got = "reset " + string(rune('0'+m.ResetSeq))
		case kd.MsgPacket:
			got = "packet " + string(m.Packet.Payload)
		}
		if got != want {
			t.Fatalf("target end got %q, want %q", got, want)
		}
	}
	if m, err := host.Recv(ctx); err != nil || m.Kind != kd.MsgReset {
		t.Fatalf("host end: %v %v, want the RESET's answer", m.Kind, err)
	}
	epoch, err := target.SendEpoch(ctx, kd.TypeStateChange64, []byte("stop"))
	must(err)
	if epoch != 1 {
		t.Fatalf("SendEpoch = %d, want 1 (one RESET sent before)", epoch)
	}
	if m, err := host.Recv(ctx); err != nil || string(m.Packet.Payload) != "stop" {
		t.Fatalf("host end: %+v %v", m, err)
	}
	// Nobody reads the host end: a bounded send fails once its inbox is full.
	var err2 error
	for i := 0; i <= inprocQueueLimit && err2 == nil; i++ {
		err2 = target.SendRetries(ctx, kd.TypeDebugIO, []byte("print"), 10)
	}
	if !errors.Is(err2, kd.ErrRetriesExhausted) {
		t.Fatalf("bounded send to a full inbox: %v", err2)
	}
	if st := host.Stats(); st.PacketsSent != 1 || st.ResetsSent != 1 || st.BreakInsSent != 1 {
		t.Fatalf("host stats %+v", st)
	}
	must(host.Close())
	if _, err := target.Recv(ctx); !errors.Is(err, kd.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := target.Send(ctx, kd.TypeStateChange64, nil); !errors.Is(err, kd.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}
