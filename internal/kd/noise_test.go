package kd

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kdsrv/internal/testkit"
)

// TestDecoderKeepsNoiseText: console text around packets comes back byte
// for byte, and the packets are still decoded.
func TestDecoderKeepsNoiseText(t *testing.T) {
	text1 := "Windows Boot Manager 10.0 (build 19045)\r\n"
	text2 := "loading \\Windows\\system32\\winload.efi 0 00 000 i ii iii\r\n"
	var line []byte
	line = append(line, text1...)
	line = AppendPacket(line, Packet{Type: TypeStateChange64, ID: InitialPacketID | SyncPacketID, Payload: []byte("state")})
	line = append(line, text2...)
	line = AppendControl(line, TypeAcknowledge, InitialPacketID)
	line = append(line, "tail\n"...)
	for _, chunk := range []int{1, 3, 7, len(line)} {
		d := Decoder{KeepNoise: true}
		var noise []byte
		var pkts []PacketType
		for i := 0; i < len(line); i += chunk {
			d.Feed(line[i:min(i+chunk, len(line))])
			for {
				f, ok := d.Next()
				noise = append(noise, d.TakeNoise()...)
				if !ok {
					break
				}
				switch f.Kind {
				case FramePacket:
					pkts = append(pkts, f.Packet.Type)
				case FrameBreakIn:
					noise = append(noise, BreakInByte)
				default:
					t.Fatalf("chunk %d: unexpected frame %+v", chunk, f)
				}
			}
		}
		if want := text1 + text2 + "tail\n"; string(noise) != want {
			t.Errorf("chunk %d: noise %q, want %q", chunk, noise, want)
		}
		if len(pkts) != 2 || pkts[0] != TypeStateChange64 || pkts[1] != TypeAcknowledge {
			t.Errorf("chunk %d: packets %v", chunk, pkts)
		}
	}
	// Without KeepNoise nothing is kept.
	d := Decoder{}
	d.Feed([]byte("hello"))
	d.Next()
	if n := d.TakeNoise(); len(n) != 0 {
		t.Errorf("noise kept without KeepNoise: %q", n)
	}
}

// TestLinkNoiseAndEvents: a host-role link hands console text (including
// 'b', which only a target takes as a break-in) to Config.Noise while the
// packets around it are exchanged, and reports corrupt packets and
// break-ins to Config.Event.
func TestLinkNoiseAndEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, z := net.Pipe()
		var mu sync.Mutex
		var noise []byte
		var events []Event
		host := NewHostLink(a, Config{
			Noise: func(b []byte) { mu.Lock(); noise = append(noise, b...); mu.Unlock() },
			Event: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
		})
		defer host.Close()
		defer z.Close()
		// The far end writes raw bytes: text, a packet, text, a corrupt packet.
		go func() {
			var line []byte
			line = append(line, "boot: debug on\n"...)
			line = AppendPacket(line, Packet{Type: TypeStateChange64, ID: InitialPacketID | SyncPacketID, Payload: []byte("sc")})
			line = append(line, "more text\n"...)
			bad := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: []byte("xy")})
			bad[len(bad)-2] ^= 0xff // payload byte: bad checksum
			line = append(line, bad...)
			_, _ = z.Write(line)
			// Drain what the host writes (ACK, RESEND).
			buf := make([]byte, 256)
			for {
				if _, err := z.Read(buf); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			m, err := host.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind == MsgPacket {
				if string(m.Packet.Payload) != "sc" {
					t.Fatalf("packet %+v", m.Packet)
				}
				break
			}
		}
		if err := host.SendBreakIn(); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "console text and events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return bytes.HasPrefix(noise, []byte("boot: debug on\nmore text\n")) && len(events) >= 2
		})
		mu.Lock()
		defer mu.Unlock()
		var corrupt, breakIn bool
		for _, e := range events {
			corrupt = corrupt || e.Kind == EventCorrupt && e.Packet.Type == TypeStateManipulate
			breakIn = breakIn || e.Kind == EventBreakIn && e.Dir == Sent
		}
		if !corrupt || !breakIn {
			t.Errorf("events %+v: want a corrupt STATE_MANIPULATE and a break-in sent", events)
		}
	})
}
