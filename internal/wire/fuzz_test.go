package wire

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kdsrv/internal/testkit"
)

// FuzzDecoder feeds arbitrary bytes to a Decoder: it must never panic, and
// re-encoding the frames it accepted must reproduce the input's prefix.
func FuzzDecoder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		var out []byte
		for range 64 {
			fr, err := d.Next()
			if err != nil {
				if err == io.EOF && len(out) != len(data) {
					t.Fatalf("io.EOF after %d of %d bytes", len(out), len(data))
				}
				break
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes accepted", len(fr.Payload))
			}
			out = AppendFrameFlags(out, fr.Type, fr.Flags, fr.Payload)
		}
		if !bytes.HasPrefix(data, out) {
			t.Fatalf("re-encoded frames differ from the input:\n in %x\nout %x", data, out)
		}
	})
}

// roundTrip checks the typed-decoder property shared by all fuzz targets:
// whatever a decoder accepts, its encoder writes back in a form the decoder
// reads to the same value.
func roundTrip[T any](t *testing.T, data []byte, dec func([]byte) (T, error), enc func(T) []byte, exact bool) {
	v, err := dec(data)
	if err != nil {
		if _, ok := ErrorCode(err); !ok {
			t.Fatalf("decoder error without a code: %v", err)
		}
		return
	}
	b := enc(v)
	if exact && !bytes.Equal(b, data) {
		t.Fatalf("re-encoding changed the bytes:\n in %x\nout %x", data, b)
	}
	v2, err := dec(b)
	if err != nil {
		t.Fatalf("decoder refuses its own encoding %x: %v", b, err)
	}
	if d := cmp.Diff(v, v2); d != "" {
		t.Fatalf("value changed across a round trip (-first +second):\n%s", d)
	}
}

func FuzzDecodeHello(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeHello, EncodeHello, false) })
}

func FuzzDecodeHelloReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeHelloReply, EncodeHelloReply, false) })
}

func FuzzDecodeProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeProof, EncodeProof, true) })
}

func FuzzDecodeOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeOpen, EncodeOpen, true) })
}

func FuzzDecodeOpened(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeOpened, EncodeOpened, false) })
}

type kdPacket struct {
	Type    uint16
	Payload []byte
}

func FuzzDecodeKD(f *testing.F) {
	dec := func(p []byte) (kdPacket, error) {
		typ, payload, err := DecodeKD(p)
		return kdPacket{typ, payload}, err
	}
	enc := func(k kdPacket) []byte { return EncodeKD(k.Type, k.Payload) }
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, dec, enc, true) })
}

func FuzzDecodeError(f *testing.F) {
	enc := func(re *RemoteError) []byte { return EncodeError(re.Code, re.Msg) }
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeError, enc, false) })
}

func FuzzDecodeNotice(f *testing.F) {
	enc := func(n Notice) []byte { return EncodeNotice(n.Code, n.Text) }
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeNotice, enc, false) })
}

func FuzzDecodeBye(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeBye, EncodeBye, false) })
}

func FuzzDecodeState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeState, EncodeState, false) })
}

func FuzzDecodeControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodeControl, EncodeControl, true) })
}

func FuzzDecodePing(f *testing.F) {
	enc := func(p [PingSize]byte) []byte { return p[:] }
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, data, DecodePing, enc, true) })
}

// TestFuzzSeeds writes (with -update) and checks the seed corpora under
// testdata/fuzz: golden payloads plus hand-picked malformed inputs.
func TestFuzzSeeds(t *testing.T) {
	g := map[string][]byte{}
	var stream []byte
	for _, c := range goldenCases(t) {
		g[c.name] = c.payload
		stream = AppendFrame(stream, c.typ, c.payload)
	}
	seeds := map[string][][]byte{
		"FuzzDecoder": {
			stream,
			AppendFrame(nil, TypeKD, g["kd"]),
			header(TypeKD, 0, 1<<30),
			header(TypeKD, 0, MaxPayload),
			AppendFrameFlags(nil, 0x66, FlagIgnorable, []byte("hint")),
			[]byte("GET / HTTP/1.1\r\n\r\n"),
			stream[:len(stream)-3],
		},
		"FuzzDecodeHello":      {g["hello"], append(bytes.Clone(g["hello"]), 1, 2, 3), g["hello"][:36]},
		"FuzzDecodeHelloReply": {g["hello_reply"], EncodeHelloReply(HelloReply{Version: 1}), g["hello_reply"][:40]},
		"FuzzDecodeProof":      {g["auth"], g["auth_ok"][:31]},
		"FuzzDecodeOpen":       {g["open"], g["open_watch"], EncodeOpen(Open{}), []byte{0, 0, 0, 2, 0xC3, 0x28}, []byte{0, 3, 0, 0}},
		"FuzzDecodeNotice":     {g["notice"], {0, 10}, []byte{0, 10, 0x1B, '[', 0xFF}},
		"FuzzDecodeOpened":     {g["opened"], []byte{0, 0, 0, 1, 0, 3, 'a', '\n', 0xFF}},
		"FuzzDecodeKD":         {g["kd"], {0, 4}},
		"FuzzDecodeError":      {g["error"], EncodeError(Internal, ""), []byte{0, 1, 0x1B, '[', 0xFF}},
		"FuzzDecodeBye":        {g["bye"], g["bye_shutdown"], {0, 0}},
		"FuzzDecodeState":      {g["state"], {0, 9}},
		"FuzzDecodeControl":    {g["control"], g["control_reply"]},
		"FuzzDecodePing":       {g["ping"], {1}},
	}
	for name, inputs := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, in := range inputs {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
			if testkit.Updating() {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create the seed corpus)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale (run with -update)", path)
			}
		}
	}
}
