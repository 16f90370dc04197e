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

// fuzzRoundTrip is the body of every typed-payload fuzz target: whatever
// dec accepts, enc writes back in a form dec reads to the same value (with
// exact, to the same bytes); whatever dec refuses, it refuses with a
// protocol error code.
func fuzzRoundTrip[T any](f *testing.F, dec func([]byte) (T, error), enc func(T) []byte, exact bool) {
	f.Fuzz(func(t *testing.T, data []byte) {
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
	})
}

// The fuzz targets, one a payload decoder; their seeds are under
// testdata/fuzz/<name> (TestFuzzSeeds).

func FuzzDecodeHello(f *testing.F)      { fuzzRoundTrip(f, DecodeHello, EncodeHello, false) }
func FuzzDecodeHelloReply(f *testing.F) { fuzzRoundTrip(f, DecodeHelloReply, EncodeHelloReply, false) }
func FuzzDecodeProof(f *testing.F)      { fuzzRoundTrip(f, DecodeProof, EncodeProof, true) }
func FuzzDecodeOpen(f *testing.F)       { fuzzRoundTrip(f, DecodeOpen, EncodeOpen, true) }
func FuzzDecodeOpened(f *testing.F)     { fuzzRoundTrip(f, DecodeOpened, EncodeOpened, false) }
func FuzzDecodeBye(f *testing.F)        { fuzzRoundTrip(f, DecodeBye, EncodeBye, false) }
func FuzzDecodeState(f *testing.F)      { fuzzRoundTrip(f, DecodeState, EncodeState, false) }
func FuzzDecodeControl(f *testing.F)    { fuzzRoundTrip(f, DecodeControl, EncodeControl, true) }

func FuzzDecodePing(f *testing.F) {
	fuzzRoundTrip(f, DecodePing, func(p [PingSize]byte) []byte { return p[:] }, true)
}

func FuzzDecodeError(f *testing.F) {
	fuzzRoundTrip(f, DecodeError, func(re *RemoteError) []byte { return EncodeError(re.Code, re.Msg) }, false)
}

func FuzzDecodeNotice(f *testing.F) {
	fuzzRoundTrip(f, DecodeNotice, func(n Notice) []byte { return EncodeNotice(n.Code, n.Text) }, false)
}

// kdPacket is a KD frame payload as one value, for FuzzDecodeKD.
type kdPacket struct {
	Type    uint16
	Payload []byte
}

func FuzzDecodeKD(f *testing.F) {
	dec := func(p []byte) (kdPacket, error) {
		typ, payload, err := DecodeKD(p)
		return kdPacket{typ, payload}, err
	}
	fuzzRoundTrip(f, dec, func(k kdPacket) []byte { return EncodeKD(k.Type, k.Payload) }, true)
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
