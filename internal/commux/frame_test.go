package commux

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kdsrv/internal/testkit"
)

// goldenFrames are the vectors in testdata/frames.golden; docs/commux.md
// quotes some of them.
var goldenFrames = []struct {
	name string
	f    frame
}{
	{"data-ch7-hi", frame{kind: kindData, ch: 7, gen: 0x2a, wnd: 16, seq: 0, ack: 0, payload: []byte("hi")}},
	{"ack-ch7", frame{kind: kindAck, ch: 7, gen: 0x2a, wnd: 15, seq: 0, ack: 1}},
	{"ack-ch7-sack", frame{kind: kindAck, ch: 7, gen: 0x2a, wnd: 12, seq: 3, ack: 5, payload: []byte{0x05}}},
	{"open-ch7", frame{kind: kindOpen, ch: 7, gen: 0x2a, wnd: 16}},
	{"open-ack-ch7", frame{kind: kindOpenAck, ch: 7, gen: 0x2a, wnd: 16}},
	{"close-ch7", frame{kind: kindClose, ch: 7, gen: 0x2a, wnd: 16, seq: 1, ack: 1}},
	{"reset-ch7-no-listener", frame{kind: kindReset, ch: 7, gen: 0x2a, payload: []byte{rstNoListen}}},
	{"link-reset", frame{kind: kindReset, ch: LinkChannel}},
	{"ping", frame{kind: kindPing, ch: LinkChannel}},
	{"pong-token", frame{kind: kindPong, ch: LinkChannel, payload: []byte{1, 2, 3, 4}}},
	{"data-ch0-seq-wrap", frame{kind: kindData, ch: 0, gen: 0xff, wnd: 255, seq: 0xffff, ack: 0x8000, payload: []byte{magic0, magic1, 0x00, 0xff}}},
}

func encode(f frame) []byte { return appendFrame(nil, &f) }

func TestGoldenFrames(t *testing.T) {
	path := filepath.Join("testdata", "frames.golden")
	var out strings.Builder
	out.WriteString("# commux frame vectors: name, then the frame in hex. Regenerate: go test ./internal/commux -run TestGoldenFrames -update\n")
	for _, g := range goldenFrames {
		if err := g.f.validate(); err != nil {
			t.Fatalf("%s: invalid golden frame: %v", g.name, err)
		}
		fmt.Fprintf(&out, "%s %x\n", g.name, encode(g.f))
	}
	if testkit.Updating() {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		writeSeeds(t)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Fatalf("encoding changed (-golden +now):\n%s", diff)
	}
	// And every golden vector decodes to its frame.
	sc := bufio.NewScanner(bytes.NewReader(want))
	i := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, hx, _ := strings.Cut(line, " ")
		raw, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := decodeAll(raw)
		if len(got) != 1 || !sameFrame(got[0], goldenFrames[i].f) {
			t.Fatalf("%s: decoded %v", name, got)
		}
		i++
	}
}

// writeSeeds regenerates the fuzz seed corpus from the golden frames.
func writeSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzFrameDecoder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for _, g := range goldenFrames {
		stream = append(stream, encode(g.f)...)
	}
	damaged := append([]byte(nil), stream...)
	damaged[5] ^= 0x40
	damaged[40] ^= 0x01
	seeds := map[string][]byte{
		"empty":           {},
		"stream":          stream,
		"noise-prefix":    append([]byte{0x00, magic0, 0x11, magic0, magic1, 0x17}, stream...),
		"damaged":         damaged,
		"truncated":       stream[:len(stream)-3],
		"huge-length":     {magic0, magic1, 0x11, 0x07, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0},
		"only-sync-bytes": bytes.Repeat([]byte{magic0, magic1}, 20),
	}
	for _, g := range goldenFrames {
		seeds["frame-"+g.name] = encode(g.f)
	}
	for name, data := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sameFrame(a, b frame) bool {
	return a.kind == b.kind && a.ch == b.ch && a.gen == b.gen && a.wnd == b.wnd &&
		a.seq == b.seq && a.ack == b.ack && bytes.Equal(a.payload, b.payload)
}

// decodeAll decodes everything in raw, copying payloads.
func decodeAll(raw []byte) []frame {
	var d decoder
	d.feed(raw)
	return drain(&d)
}

func drain(d *decoder) []frame {
	var out []frame
	for {
		f, ok := d.next()
		if !ok {
			return out
		}
		f.payload = append([]byte(nil), f.payload...)
		out = append(out, f)
	}
}

func TestDecoderResync(t *testing.T) {
	a := frame{kind: kindData, ch: 1, gen: 9, wnd: 8, seq: 4, ack: 2, payload: []byte("first frame payload")}
	b := frame{kind: kindData, ch: 2, gen: 3, wnd: 8, seq: 7, ack: 1, payload: []byte{magic0, magic1, magic0, magic1, 0, 0}}
	c := frame{kind: kindAck, ch: 1, gen: 9, wnd: 8, ack: 5}
	ea, eb, ec := encode(a), encode(b), encode(c)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(p []byte, i int) []byte {
		q := append([]byte(nil), p...)
		q[i] ^= 0x10
		return q
	}
	drop := func(p []byte, i int) []byte { return append(append([]byte(nil), p[:i]...), p[i+1:]...) }
	dup := func(p []byte, i int) []byte {
		return append(append(append([]byte(nil), p[:i+1]...), p[i]), p[i+1:]...)
	}
	cases := []struct {
		name     string
		in       []byte
		want     []frame
		crc      bool // expect CRC errors counted
		resynced bool // expect bytes skipped
	}{
		{"clean", join(ea, eb, ec), []frame{a, b, c}, false, false},
		{"noise before", join([]byte("line noise \x00\xff"), ea), []frame{a}, false, true},
		{"lone first sync byte", join([]byte{magic0, 0x00, magic0}, ea), []frame{a}, false, true},
		{"flipped sync byte", join(flip(ea, 1), eb), []frame{b}, false, true},
		{"flipped header byte", join(flip(ea, 6), eb), []frame{b}, true, true},
		{"flipped length", join(flip(ea, 11), eb, ec), []frame{b, c}, true, true},
		{"flipped header crc", join(flip(ea, 14), eb), []frame{b}, true, true},
		{"flipped payload byte", join(flip(ea, 20), eb), []frame{b}, true, true},
		{"flipped trailer", join(flip(ea, len(ea)-1), eb), []frame{b}, true, true},
		{"dropped payload byte", join(drop(ea, 20), eb, ec), []frame{b, c}, true, true},
		{"duplicated header byte", join(dup(ea, 3), eb), []frame{b}, true, true},
		{"duplicated payload byte", join(dup(ea, 18), ec), []frame{c}, true, true},
		{"sync bytes inside payload", join(eb, eb), []frame{b, b}, false, false},
		{"damaged frame with sync in payload", join(flip(eb, 25), ea), []frame{a}, true, true},
		{"truncated tail waits", join(ea, eb[:10]), []frame{a}, false, false},
		{"frame after truncated one", join(ea[:12], ec), []frame{c}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 7, len(tc.in)} {
				var d decoder
				var got []frame
				for i := 0; i < len(tc.in); i += chunk {
					d.feed(tc.in[i:min(i+chunk, len(tc.in))])
					got = append(got, drain(&d)...)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("chunk %d: got %d frames %v, want %d", chunk, len(got), got, len(tc.want))
				}
				for i := range got {
					if !sameFrame(got[i], tc.want[i]) {
						t.Fatalf("chunk %d: frame %d = %v, want %v", chunk, i, &got[i], &tc.want[i])
					}
				}
				if tc.crc != (d.crcErrors > 0) {
					t.Errorf("chunk %d: crcErrors = %d, want >0: %v", chunk, d.crcErrors, tc.crc)
				}
				if tc.resynced != (d.skipped > 0) {
					t.Errorf("chunk %d: skipped = %d, want >0: %v", chunk, d.skipped, tc.resynced)
				}
			}
		})
	}
}

func TestDecoderRejectsBadHeaders(t *testing.T) {
	cases := []struct {
		name string
		f    frame
	}{
		{"unknown kind", frame{kind: 0x0e, ch: 1}},
		{"data on link channel", frame{kind: kindData, ch: LinkChannel, payload: []byte{1}}},
		{"empty data", frame{kind: kindData, ch: 1}},
		{"open with payload", frame{kind: kindOpen, ch: 1, payload: []byte{1}}},
		{"ping on a connection channel", frame{kind: kindPing, ch: 3}},
		{"long sack", frame{kind: kindAck, ch: 3, payload: make([]byte, 33)}},
		{"long reset", frame{kind: kindReset, ch: 3, payload: []byte{1, 2}}},
		{"oversized payload", frame{kind: kindData, ch: 3, payload: make([]byte, MaxPayload+1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f.validate() == nil {
				t.Fatal("validate accepted it")
			}
			var d decoder
			d.feed(encode(tc.f))
			d.feed(encode(frame{kind: kindPing, ch: LinkChannel}))
			got := drain(&d)
			if len(got) != 1 || got[0].kind != kindPing {
				t.Fatalf("decoded %v, want only the PING after it", got)
			}
			if d.badHeaders == 0 {
				t.Fatal("bad header not counted")
			}
		})
	}
	// Wrong protocol version.
	raw := encode(frame{kind: kindPing, ch: LinkChannel})
	raw[2] = 2<<4 | kindPing
	fixHeaderCRC(raw)
	if got := decodeAll(raw); len(got) != 0 {
		t.Fatalf("version 2 frame decoded: %v", got)
	}
}

func fixHeaderCRC(raw []byte) {
	sum := crc32c(raw[:12])
	raw[12], raw[13], raw[14], raw[15] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
}

func FuzzFrameDecoder(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzFrameDecoder (regenerate with -update).
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary bytes, fed in pieces: never panics, only valid frames.
		var d decoder
		step := 1
		if len(data) > 0 {
			step = int(data[0])%17 + 1
		}
		var frames []frame
		for i := 0; i < len(data); i += step {
			d.feed(data[i:min(i+step, len(data))])
			frames = append(frames, drain(&d)...)
		}
		for _, fr := range frames {
			if err := fr.validate(); err != nil {
				t.Fatalf("decoder returned an invalid frame %v: %v", &fr, err)
			}
			again := decodeAll(encode(fr))
			if len(again) != 1 || !sameFrame(again[0], fr) {
				t.Fatalf("frame %v does not round-trip", &fr)
			}
		}
		if d.off > len(d.buf) {
			t.Fatalf("decoder offset %d beyond buffer %d", d.off, len(d.buf))
		}
		// A valid frame built from the input round-trips, also behind the
		// input as noise.
		if len(data) >= 8 {
			fr := frame{kind: data[0]%8 + 1, ch: data[1], gen: data[2], wnd: data[3],
				seq: uint16(data[4])<<8 | uint16(data[5]), ack: uint16(data[6])<<8 | uint16(data[7]),
				payload: data[8:min(len(data), 8+MaxPayload)]}
			if fr.validate() == nil {
				var d2 decoder
				d2.feed(data)
				drain(&d2)
				d2.feed(encode(fr))
				got := drain(&d2)
				if len(got) == 0 || !sameFrame(got[len(got)-1], fr) {
					t.Fatalf("valid frame %v lost behind %d bytes of noise: got %v", &fr, len(data), got)
				}
			}
		}
	})
}
