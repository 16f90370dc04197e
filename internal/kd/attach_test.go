package kd

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A target that kept its ids from an earlier debugger sends its state
// change with an odd id. A fresh host link takes it for a retransmission;
// after AdoptNext it is delivered, and the target's stream is followed
// from there.
func TestAdoptNextAcceptsTheTargetsIDs(t *testing.T) {
	for _, adopt := range []bool{false, true} {
		a, b := net.Pipe()
		host := NewHostLink(a, Config{})
		go io.Copy(io.Discard, b) // the host's ACKs
		if adopt {
			host.AdoptNext()
		}
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		b.Write(AppendPacket(nil, Packet{Type: TypeStateChange64, ID: InitialPacketID | 1, Payload: []byte("stop")}))
		b.Write(AppendPacket(nil, Packet{Type: TypeDebugIO, ID: InitialPacketID, Payload: []byte("next")}))
		b.Write(AppendPacket(nil, Packet{Type: TypeDebugIO, ID: InitialPacketID, Payload: []byte("again")}))
		b.Write(AppendPacket(nil, Packet{Type: TypeDebugIO, ID: InitialPacketID | 1, Payload: []byte("end")}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got []string
		for {
			m, err := host.Recv(ctx)
			if err != nil {
				t.Fatalf("adopt=%v: after %q: %v", adopt, got, err)
			}
			if string(m.Packet.Payload) == "end" {
				break
			}
			got = append(got, string(m.Packet.Payload))
		}
		cancel()
		host.Close()
		b.Close()
		want := "next" // without adoption the odd id is a duplicate
		if adopt {
			want = "stop next" // "again" repeats "next"'s id: a duplicate
		}
		if strings.Join(got, " ") != want {
			t.Errorf("adopt=%v: delivered %q, want %q", adopt, got, want)
		}
	}
}

func TestAttachScheduleDefault(t *testing.T) {
	a := NewAttach(AttachPolicy{Resets: -1})
	st := a.Start()
	resets, told := 0, -1
	for i := 1; i <= 12; i++ {
		if !st.BreakIn {
			t.Fatalf("attempt %d: no break-in", i)
		}
		if st.Reset {
			resets++
		}
		if st.NotResponding {
			if told >= 0 {
				t.Fatalf("attempt %d: told again", i)
			}
			told = i
		}
		want := DefaultAttachInterval
		if i > DefaultAttachAttempts {
			want = DefaultSlowInterval
		}
		if st.Wait != want {
			t.Fatalf("attempt %d: wait %v, want %v", i, st.Wait, want)
		}
		st = a.Tick()
	}
	if told != DefaultAttachAttempts+1 {
		t.Errorf("told not responding at attempt %d, want %d", told, DefaultAttachAttempts+1)
	}
	if resets != 12 {
		t.Errorf("%d RESETs in 12 attempts, want one with every break-in", resets)
	}
}

func TestAttachScheduleBoundedResets(t *testing.T) {
	a := NewAttach(AttachPolicy{Resets: 3, Interval: 10 * time.Millisecond, SlowInterval: time.Minute})
	st := a.Start()
	var resets []bool
	told := -1
	for i := 1; i <= 8; i++ {
		resets = append(resets, st.Reset)
		if st.NotResponding {
			told = i
		}
		if i <= 3 && st.Wait != 10*time.Millisecond || i > 3 && st.Wait != time.Minute {
			t.Fatalf("attempt %d: wait %v", i, st.Wait)
		}
		st = a.Tick()
	}
	for i, r := range resets {
		if r != (i < 3) {
			t.Fatalf("RESETs by attempt: %v, want the first 3 only", resets)
		}
	}
	if told != 4 {
		t.Errorf("told at attempt %d, want 4 (once the RESETs are used up)", told)
	}
	if a.Resets() != 3 {
		t.Errorf("Resets() = %d", a.Resets())
	}
}

func TestAttachScheduleUnlimited(t *testing.T) {
	a := NewAttach(AttachPolicy{Resets: 0})
	st := a.Start()
	told := 0
	for i := 1; i <= 50; i++ {
		if !st.Reset || st.Wait != DefaultAttachInterval {
			t.Fatalf("attempt %d: %+v, want a RESET every second", i, st)
		}
		if st.NotResponding {
			told++
		}
		st = a.Tick()
	}
	if told != 1 {
		t.Errorf("told %d times, want once", told)
	}
}

func pkt(pt PacketType) Message {
	return Message{Kind: MsgPacket, Packet: Packet{Type: pt, Payload: []byte{1}}}
}

func TestAttachCompletesAfterResetReply(t *testing.T) {
	a := NewAttach(AttachPolicy{Resets: -1})
	a.Start()
	// A state change before any RESET reply (a running target broken
	// into, its RESET lost) waits for the reply.
	if st, deliver := a.Message(pkt(TypeStateChange64)); deliver || st.Done {
		t.Fatalf("state change before the RESET reply: %+v deliver=%v", st, deliver)
	}
	// Prints are passed on; manipulate replies are leftovers.
	if _, deliver := a.Message(pkt(TypeDebugIO)); !deliver {
		t.Error("a print was held back")
	}
	if _, deliver := a.Message(pkt(TypeStateManipulate)); deliver {
		t.Error("a stale manipulate reply was passed on")
	}
	if st, _ := a.Message(Message{Kind: MsgReset}); st.Done {
		t.Fatal("done on the RESET reply alone")
	}
	st, deliver := a.Message(pkt(TypeStateChange64))
	if !st.Done || !deliver || !a.Done() {
		t.Fatalf("state change after the RESET reply: %+v deliver=%v", st, deliver)
	}
}

func TestAttachBootingTarget(t *testing.T) {
	// A target that boots sends its first state change with the sync bit
	// while our RESETs went nowhere: it is not taken until a RESET is
	// answered, since the RESET we sent may still be on its way.
	a := NewAttach(AttachPolicy{Resets: -1})
	a.Start()
	a.Message(Message{Kind: MsgSync})
	if st, deliver := a.Message(pkt(TypeStateChange64)); st.Done || deliver {
		t.Fatalf("%+v %v", st, deliver)
	}
	a.Message(Message{Kind: MsgReset})
	if st, _ := a.Message(pkt(TypeStateChange64)); !st.Done {
		t.Fatal("not done after the RESET reply")
	}
}

func TestAttachAdoptsWhenResetsUsedUp(t *testing.T) {
	a := NewAttach(AttachPolicy{Resets: 1})
	a.Start()
	a.Tick() // break-in only from now on
	st, deliver := a.Message(pkt(TypeStateChange64))
	if !st.Done || !deliver {
		t.Fatalf("with the RESETs used up the state change is taken as it is: %+v %v", st, deliver)
	}
}
