package kd

import (
	"bytes"
	"kdsrv/internal/testkit"
	"math/rand/v2"
	"strings"
	"testing"
)

// Whole-packet vectors from docs/kd-protocol.md §8 (V1–V4, V9).
var packetVectors = []struct {
	name string
	pkt  Packet
	wire string
}{
	{"v1_reset", Packet{Type: TypeReset}, "69696969 0600 0000 00000000 00000000"},
	{"v2_resend", Packet{Type: TypeResend}, "69696969 0500 0000 00000000 00000000"},
	{"v3_ack", Packet{Type: TypeAcknowledge, ID: 0x80800000}, "69696969 0400 0000 00008080 00000000"},
	{"v4_getversion_request", Packet{Type: TypeStateManipulate, ID: 0x80800000,
		Payload: append([]byte{0x46, 0x31}, make([]byte, 54)...)},
		"30303030 0200 3800 00008080 77000000 46310000 00000000 00000000 00000000" + strings.Repeat("00", 40) + "aa"},
	{"v9_dbgprint", Packet{Type: TypeDebugIO, ID: 0x80800001,
		Payload: []byte{0x30, 0x32, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 'H', 'i', '\n'}},
		"30303030 0300 1300 01008080 20010000 30320000 00000000 03000000 00000000 48690a aa"},
}

func TestPacketGolden(t *testing.T) {
	for _, v := range packetVectors {
		t.Run(v.name, func(t *testing.T) {
			got := AppendPacket(nil, v.pkt)
			want := testkit.Unhex(t, v.wire)
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			checkGolden(t, "packets", v.name, got)
			var d Decoder
			d.Feed(want)
			f, ok := d.Next()
			if !ok || f.Kind != FramePacket {
				t.Fatalf("decode: got %+v ok=%v", f, ok)
			}
			if f.Packet.Type != v.pkt.Type || f.Packet.ID != v.pkt.ID || !bytes.Equal(f.Packet.Payload, v.pkt.Payload) {
				t.Fatalf("decode: got %v, want %v", f.Packet, v.pkt)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	if got := Checksum(append([]byte{0x46, 0x31}, make([]byte, 54)...)); got != 0x77 {
		t.Fatalf("GetVersion request checksum = %#x, want 0x77", got)
	}
	// Wraps as uint32 and agrees with a plain loop for all lengths.
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		var want uint32
		for _, c := range b {
			want += uint32(c)
		}
		if got := Checksum(b); got != want {
			t.Fatalf("len %d: got %#x want %#x", n, got, want)
		}
	}
}

func decodeAll(d *Decoder) []Frame {
	var out []Frame
	for {
		f, ok := d.Next()
		if !ok {
			return out
		}
		f.Packet.Payload = append([]byte(nil), f.Packet.Payload...)
		out = append(out, f)
	}
}

func TestDecoderResyncAndBreakIn(t *testing.T) {
	good := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: 0x80800001, Payload: []byte("hello, target")})
	ack := AppendControl(nil, TypeAcknowledge, 0x80800000)
	bad := append([]byte(nil), good...)
	bad[HeaderSize+2] ^= 0x40 // payload byte: checksum now wrong

	var stream []byte
	stream = append(stream, 0x62)                   // break-in before anything
	stream = append(stream, "junk000iii0"...)       // partial leaders and noise
	stream = append(stream, bad...)                 // corrupt packet
	stream = append(stream, 0x30, 0x30, 0x69, 0x69) // mixed leader bytes
	stream = append(stream, good...)
	stream = append(stream, ack...)
	stream = append(stream, 0x62)

	check := func(t *testing.T, frames []Frame) {
		t.Helper()
		var kinds []FrameKind
		for _, f := range frames {
			kinds = append(kinds, f.Kind)
		}
		want := []FrameKind{FrameBreakIn, FrameCorrupt, FramePacket, FramePacket, FrameBreakIn}
		if len(kinds) != len(want) {
			t.Fatalf("frames %v, want kinds %v", frames, want)
		}
		for i := range want {
			if kinds[i] != want[i] {
				t.Fatalf("frame %d kind %d, want %d (%v)", i, kinds[i], want[i], frames)
			}
		}
		if string(frames[2].Packet.Payload) != "hello, target" || frames[2].Packet.ID != 0x80800001 {
			t.Fatalf("good packet decoded as %v", frames[2].Packet)
		}
		if frames[3].Packet.Type != TypeAcknowledge || frames[3].Packet.ID != 0x80800000 {
			t.Fatalf("ack decoded as %v", frames[3].Packet)
		}
		if frames[1].Reason != "bad checksum" {
			t.Fatalf("corrupt reason %q", frames[1].Reason)
		}
	}
	t.Run("whole", func(t *testing.T) {
		var d Decoder
		d.Feed(stream)
		check(t, decodeAll(&d))
	})
	t.Run("byte by byte", func(t *testing.T) {
		var d Decoder
		var frames []Frame
		for _, c := range stream {
			d.Feed([]byte{c})
			frames = append(frames, decodeAll(&d)...)
		}
		check(t, frames)
		if d.Buffered() != 0 {
			t.Fatalf("%d bytes left buffered", d.Buffered())
		}
	})
}

func TestDecoderOversizedLengthNotTrusted(t *testing.T) {
	// A header announcing 0xFFFF bytes must not make the decoder wait for
	// them: the packet right behind it decodes at once.
	hdr := appendHeader(nil, DataLeader, TypeStateManipulate, 0xFFFF, 0x80800000, 0)
	good := AppendPacket(nil, Packet{Type: TypeDebugIO, ID: 0x80800000, Payload: []byte{1, 2, 3}})
	var d Decoder
	d.Feed(append(hdr, good...))
	frames := decodeAll(&d)
	if len(frames) != 2 || frames[0].Kind != FrameCorrupt || frames[1].Kind != FramePacket || frames[1].Packet.Type != TypeDebugIO {
		t.Fatalf("got %+v", frames)
	}
}

func TestDecoderAbortStalledPacket(t *testing.T) {
	good := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: 0x80800000, Payload: bytes.Repeat([]byte{7}, 100)})
	var d Decoder
	d.Feed(good[:40]) // header and part of the payload, then silence
	if _, ok := d.Next(); ok {
		t.Fatal("incomplete packet decoded")
	}
	if !d.MidPacket() {
		t.Fatal("MidPacket false while a packet is half received")
	}
	f, ok := d.Abort()
	if !ok || f.Kind != FrameCorrupt {
		t.Fatalf("Abort = %+v, %v", f, ok)
	}
	d.Feed(good) // the retransmission
	frames := decodeAll(&d)
	if len(frames) != 1 || frames[0].Kind != FramePacket || len(frames[0].Packet.Payload) != 100 {
		t.Fatalf("after abort got %+v", frames)
	}
}

func TestDecoderControlNoiseDoesNotHideData(t *testing.T) {
	// "iiii" followed by a bogus type, with a real packet starting inside
	// what would have been its header.
	good := AppendPacket(nil, Packet{Type: TypeStateChange64, ID: 0x80800800, Payload: []byte{9}})
	stream := append([]byte{0x69, 0x69, 0x69, 0x69, 0x33, 0x00}, good...)
	var d Decoder
	d.Feed(stream)
	frames := decodeAll(&d)
	if len(frames) != 1 || frames[0].Kind != FramePacket || frames[0].Packet.Type != TypeStateChange64 {
		t.Fatalf("got %+v", frames)
	}
}

// TestDecoderNoiseEndingInLeaderByteIsBounded: a peer whose every read ends
// in a leader byte (noise, then "0") must not make the decoder keep all the
// noise: memory stays within one packet however long the stream runs. Found
// while fuzzing the link; the buffer grew by a read's size per read.
func TestDecoderNoiseEndingInLeaderByteIsBounded(t *testing.T) {
	var d Decoder
	for _, last := range []byte{DataLeaderByte, CtrlLeaderByte} {
		chunk := append(bytes.Repeat([]byte{'x'}, 4095), last)
		for range 100 {
			d.Feed(chunk)
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
			if d.Buffered() > MaxPacketSize {
				t.Fatalf("leader byte %q: decoder holds %d bytes after %d bytes of noise", last, d.Buffered(), 100*len(chunk))
			}
		}
	}
	// The partial leader kept is still a leader: a packet that completes it
	// is decoded.
	pkt := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: []byte("ok")})
	d = Decoder{}
	d.Feed(append([]byte("noise"), pkt[:2]...))
	if _, ok := d.Next(); ok {
		t.Fatal("frame from noise and half a leader")
	}
	d.Feed(pkt[2:])
	f, ok := d.Next()
	if !ok || f.Kind != FramePacket || string(f.Packet.Payload) != "ok" {
		t.Fatalf("packet split inside its leader: got %+v, %v", f, ok)
	}
}

func FuzzDecoder(f *testing.F) {
	for _, v := range packetVectors {
		f.Add(testkit.Unhex(f, v.wire))
	}
	f.Add([]byte{0x62, 0x30, 0x30, 0x30, 0x30, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		n := 0
		// Feed in two parts to exercise partial input.
		half := len(b) / 2
		for _, part := range [][]byte{b[:half], b[half:]} {
			d.Feed(part)
			for {
				fr, ok := d.Next()
				if !ok {
					break
				}
				checkFrame(t, fr)
				n++
			}
			// Between reads the decoder holds at most one unfinished
			// packet, however the stream was cut.
			if d.Buffered() > MaxPacketSize {
				t.Fatalf("buffered %d bytes between reads (> %d)", d.Buffered(), MaxPacketSize)
			}
		}
		if n > len(b) {
			t.Fatalf("%d frames from %d bytes", n, len(b))
		}
		d.Abort()
		if d.Buffered() > len(b) {
			t.Fatalf("buffered %d > input %d", d.Buffered(), len(b))
		}
	})
}

func checkFrame(t *testing.T, f Frame) {
	if f.Kind != FramePacket {
		return
	}
	p := f.Packet
	if len(p.Payload) > MaxPayload {
		t.Fatalf("payload %d bytes", len(p.Payload))
	}
	// A decoded packet re-encodes to a wire image that decodes to itself.
	w := AppendPacket(nil, p)
	var d Decoder
	d.Feed(w)
	g, ok := d.Next()
	if !ok || g.Kind != FramePacket || g.Packet.Type != p.Type || g.Packet.ID != p.ID || !bytes.Equal(g.Packet.Payload, p.Payload) {
		t.Fatalf("re-decode of %v gave %+v", p, g)
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	payload := make([]byte, 56+3944)
	buf := make([]byte, 0, MaxPacketSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf = AppendPacket(buf[:0], Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: payload})
	}
}

func BenchmarkDecoder(b *testing.B) {
	w := AppendPacket(nil, Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: make([]byte, 56+3944)})
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(w)))
	for b.Loop() {
		d.Feed(w)
		if f, ok := d.Next(); !ok || f.Kind != FramePacket {
			b.Fatal("no packet")
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	p := make([]byte, 4000)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Checksum(p)
	}
}
