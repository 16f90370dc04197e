package kdnet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"kdsrv/internal/testkit"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCaptureBreakIn checks the compact vector of docs/kd-protocol.md §9: the
// host's break-in datagram from a real Windows session.
func TestCaptureBreakIn(t *testing.T) {
	t.Parallel()
	_, s := captureSealers(t)
	wire := testkit.Unhex(t, captureBreakIn)
	if got := readHexFile(t, "capture/host-breakin.hex"); !bytes.Equal(got, wire) {
		t.Fatalf("testdata/capture/host-breakin.hex differs from the documented vector")
	}

	d, err := s.Open(wire)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := Datagram{Version: 2, Channel: ChannelData, Seq: 2, HostToTarget: true, Payload: []byte{0x62}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Open mismatch (-want +got):\n%s", diff)
	}

	// The decrypted metadata+payload+padding, exactly as documented.
	buf := bytes.Clone(wire)
	if _, err := s.OpenInPlace(buf); err != nil {
		t.Fatalf("OpenInPlace: %v", err)
	}
	if got, want := buf[HeaderSize:len(buf)-TagSize], testkit.Unhex(t, "0000000000000287 62 00000000000000"); !bytes.Equal(got, want) {
		t.Errorf("plaintext = %x, want %x", got, want)
	}

	// Sealing the same datagram reproduces the capture byte for byte.
	checkReseals(t, s, d, wire)
}

// checkReseals fails t unless sealing the opened datagram d again with s
// gives exactly want, the bytes it was opened from.
func checkReseals(t *testing.T, s *Sealer, d Datagram, want []byte) {
	t.Helper()
	re, err := s.Seal(nil, d)
	if err != nil {
		t.Fatalf("opened datagram does not re-seal: %v", err)
	}
	if !bytes.Equal(re, want) {
		t.Fatalf("re-sealed datagram differs:\n got %x\nwant %x", re, want)
	}
}

// TestBitFlipsRejected flips every bit of the captured break-in datagram:
// each copy must be rejected, by the magic check for bytes 0-3 and by the
// tag check (ErrAuth) everywhere else — header, metadata, payload, padding
// and tag alike.
func TestBitFlipsRejected(t *testing.T) {
	t.Parallel()
	_, s := captureSealers(t)
	wire := testkit.Unhex(t, captureBreakIn)
	for bit := range len(wire) * 8 {
		b := bytes.Clone(wire)
		b[bit/8] ^= 1 << (bit % 8)
		d, err := s.Open(b)
		want := ErrAuth
		if bit/8 < len(Magic) {
			want = ErrMagic
		}
		if !errors.Is(err, want) {
			t.Errorf("bit %d (byte %d): Open = %+v, %v; want %v", bit, bit/8, d, err, want)
		}
		if d.Payload != nil {
			t.Errorf("bit %d: rejected datagram returned a payload", bit)
		}
		// OpenInPlace on the flipped copy agrees.
		if _, err2 := s.OpenInPlace(bytes.Clone(b)); !errors.Is(err2, want) {
			t.Errorf("bit %d: OpenInPlace error %v, want %v", bit, err2, want)
		}
	}
	// Open never modifies its input.
	orig := bytes.Clone(wire)
	if _, err := s.Open(wire); err != nil || !bytes.Equal(wire, orig) {
		t.Errorf("Open modified its input or failed: %v", err)
	}
}

// TestHMACKeyIsNotOfControlKey proves both channels authenticate with the
// control key: a data datagram opens only if both the control key and the
// data key match.
func TestHMACKeyIsNotOfControlKey(t *testing.T) {
	t.Parallel()
	ctlA, err := NewSealer(leKey(1, 1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctlB, err := NewSealer(leKey(2, 2, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	dataKey := leKey(9, 9, 9, 9)
	a, _ := ctlA.WithDataKey(dataKey)
	b, _ := ctlB.WithDataKey(dataKey)
	aOther, _ := ctlA.WithDataKey(leKey(8, 8, 8, 8))

	wire, err := a.Seal(nil, Datagram{Version: 2, Channel: ChannelData, Seq: 5, Payload: []byte("kd packet")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(wire); err != nil {
		t.Errorf("same keys: %v", err)
	}
	if _, err := b.Open(wire); !errors.Is(err, ErrAuth) {
		t.Errorf("same data key, other control key: %v, want ErrAuth", err)
	}
	if _, err := aOther.Open(wire); !errors.Is(err, ErrAuth) {
		t.Errorf("same control key, other data key: %v, want ErrAuth", err)
	}
	if _, err := ctlA.Open(wire); !errors.Is(err, ErrNoDataKey) {
		t.Errorf("control-only sealer on data channel: %v, want ErrNoDataKey", err)
	}
	// A control datagram is encrypted with the control key: the data key
	// does not matter.
	cw, err := a.Seal(nil, Datagram{Channel: ChannelControl, Seq: 6})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Sealer{"ctlA": ctlA, "aOther": aOther} {
		if _, err := s.Open(cw); err != nil {
			t.Errorf("%s: control datagram: %v", name, err)
		}
	}
	if _, err := ctlB.Open(cw); !errors.Is(err, ErrAuth) {
		t.Errorf("other control key on control datagram: %v, want ErrAuth", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	_, s := captureSealers(t)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{MaxPayload}
	for n := 0; n <= 64; n++ { // every padding length, several times
		sizes = append(sizes, n)
	}
	for range 200 {
		sizes = append(sizes, rng.IntN(1501))
	}
	for _, ch := range []Channel{ChannelData, ChannelControl} {
		for _, n := range sizes {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(rng.Uint32())
			}
			d := Datagram{
				Version:      uint8(rng.Uint32()),
				Channel:      ch,
				Seq:          rng.Uint64() & MaxSeq,
				HostToTarget: rng.IntN(2) == 1,
				Payload:      payload,
			}
			prefix := []byte("prefix")
			wire, err := s.Seal(bytes.Clone(prefix), d)
			if err != nil {
				t.Fatalf("Seal %s n=%d: %v", ch, n, err)
			}
			if !bytes.HasPrefix(wire, prefix) {
				t.Fatalf("Seal clobbered dst prefix")
			}
			wire = wire[len(prefix):]
			if len(wire) != SealedLen(n) || len(wire) > MaxDatagram || (len(wire)-HeaderSize-TagSize)%aes.BlockSize != 0 {
				t.Fatalf("n=%d: sealed length %d (SealedLen %d)", n, len(wire), SealedLen(n))
			}
			if string(wire[:4]) != Magic || wire[4] != d.Version || Channel(wire[5]) != ch {
				t.Fatalf("n=%d: clear header % x", n, wire[:6])
			}
			got, err := s.Open(wire)
			if err != nil {
				t.Fatalf("Open %s n=%d: %v", ch, n, err)
			}
			if diff := cmp.Diff(d, got); diff != "" {
				t.Fatalf("%s n=%d round trip (-want +got):\n%s", ch, n, diff)
			}
		}
	}
}

// TestSealIntoPreallocated: Seal appends in place when dst has room.
func TestSealIntoPreallocated(t *testing.T) {
	_, s := captureSealers(t)
	payload := make([]byte, 100)
	buf := make([]byte, 0, MaxDatagram)
	out, err := s.Seal(buf, Datagram{Channel: ChannelData, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &buf[:1][0] {
		t.Error("Seal reallocated although dst had enough capacity")
	}
}

func TestSealErrors(t *testing.T) {
	t.Parallel()
	ctl, full := captureSealers(t)
	tests := []struct {
		name string
		s    *Sealer
		d    Datagram
		want error
		msg  string
	}{
		{"unknown channel", full, Datagram{Channel: 2}, ErrChannel, "unknown channel 2"},
		{"no data key", ctl, Datagram{Channel: ChannelData, Seq: 3}, ErrNoDataKey, "answer it first"},
		{"too large", full, Datagram{Channel: ChannelData, Payload: make([]byte, MaxPayload+1)}, ErrTooLarge, "8153 bytes on the data channel"},
		{"seq above 56 bits", full, Datagram{Channel: ChannelControl, Seq: MaxSeq + 1}, ErrSeqRange, "56-bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte{1, 2, 3}
			out, err := tt.s.Seal(dst, tt.d)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if !bytes.Equal(out, []byte{1, 2, 3}) {
				t.Errorf("dst changed on error: %x", out)
			}
		})
	}
}

// sealRaw builds an authentic datagram from an arbitrary plaintext
// (header+metadata+body, block aligned after the header), the way a
// key-holding but misbehaving peer could.
func sealRaw(t *testing.T, s *Sealer, block cipher.Block, plain []byte) []byte {
	t.Helper()
	out := append(bytes.Clone(plain), make([]byte, TagSize)...)
	end := len(plain)
	s.tag(out[end:], out[:end])
	cipher.NewCBCEncrypter(block, out[end:]).CryptBlocks(out[HeaderSize:end], out[HeaderSize:end])
	return out
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctl, full := captureSealers(t)
	good := testkit.Unhex(t, captureBreakIn)
	hdr := func(ch byte) []byte { return []byte{'M', 'D', 'B', 'G', 2, ch} }
	plain := func(ch byte, meta string, body string) []byte {
		return append(append(hdr(ch), testkit.Unhex(t, meta)...), testkit.Unhex(t, body)...)
	}
	tests := []struct {
		name string
		s    *Sealer
		in   []byte
		want error
		msg  string
	}{
		{"empty", full, nil, ErrShort, "0 bytes, need at least 38"},
		{"37 bytes", full, good[:37], ErrShort, "37 bytes"},
		{"too long", full, append([]byte(Magic), make([]byte, MaxDatagram)...), ErrLength, "exceeds the 8192-byte limit"},
		{"not MDBG", full, append([]byte("XDBG"), good[4:]...), ErrMagic, "58 44 42 47"},
		{"misaligned", full, append(bytes.Clone(good), 0), ErrLength, "not a multiple of 16"},
		{"no data key", ctl, good, ErrNoDataKey, "handshake"},
		{"wrong tag", full, append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrAuth, "38-byte data-channel datagram"},
		{"authentic unknown channel", full, sealRaw(t, full, full.control, plain(7, "0000000000000187", "6200000000000000")), ErrChannel, "unknown channel 7"},
		{"reserved bits", full, sealRaw(t, full, full.data, plain(0, "0000000000000117", "6200000000000000")), ErrMalformed, "reserved metadata bits"},
		{"padding beyond body", full, sealRaw(t, full, full.data, plain(0, "000000000000010f", "6200000000000000")), ErrMalformed, "padding of 15 bytes exceeds the 8-byte body"},
		{"nonzero padding", full, sealRaw(t, full, full.data, plain(0, "0000000000000107", "6200000000000001")), ErrMalformed, "not zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := tt.s.Open(tt.in)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if d.Payload != nil || d.Seq != 0 {
				t.Errorf("error returned data: %+v", d)
			}
		})
	}
	// The well-formed raw datagram used as the base above does open.
	ok := sealRaw(t, full, full.data, plain(0, "0000000000000187", "6200000000000000"))
	if d, err := full.Open(ok); err != nil || d.Seq != 1 || !bytes.Equal(d.Payload, []byte{0x62}) {
		t.Errorf("control case: %+v, %v", d, err)
	}
}

func TestSealerNeverPrintsKeys(t *testing.T) {
	t.Parallel()
	ctl, full := captureSealers(t)
	for _, s := range []*Sealer{ctl, full} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			out := fmt.Sprintf(verb, s)
			if !strings.Contains(out, "redacted") || strings.Contains(out, "fe") || strings.ContainsAny(out, "0123456789") {
				t.Errorf("Sprintf(%s, sealer) = %q", verb, out)
			}
		}
	}
	if ctl.HasDataKey() || !full.HasDataKey() {
		t.Error("HasDataKey wrong")
	}
}

func TestChannelString(t *testing.T) {
	t.Parallel()
	for ch, want := range map[Channel]string{0: "data", 1: "control", 9: "channel(9)"} {
		if got := ch.String(); got != want {
			t.Errorf("Channel(%d) = %q, want %q", uint8(ch), got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	if SealedLen(MaxPayload) > MaxDatagram || SealedLen(MaxPayload+1) <= MaxDatagram {
		t.Errorf("MaxPayload %d is not the largest payload within MaxDatagram", MaxPayload)
	}
	if SealedLen(0) != MinDatagram || SealedLen(8) != MinDatagram || SealedLen(9) != MinDatagram+16 {
		t.Errorf("SealedLen wrong: %d %d %d", SealedLen(0), SealedLen(8), SealedLen(9))
	}
	// A maximal KD packet (16-byte header + 4000 bytes) fits.
	if SealedLen(16+4000) > MaxDatagram {
		t.Error("largest KD packet does not fit")
	}
}

func benchSealer(b *testing.B) *Sealer {
	s, err := NewSealer(leKey(1, 1, 1, 1))
	if err != nil {
		b.Fatal(err)
	}
	s, err = s.WithDataKey(leKey(2, 3, 4, 5))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var benchSizes = []int{1, 72, 1500, 4016}

func BenchmarkSeal(b *testing.B) {
	s := benchSealer(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			d := Datagram{Version: 2, Channel: ChannelData, HostToTarget: true, Payload: make([]byte, n)}
			buf := make([]byte, 0, MaxDatagram)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for i := 0; b.Loop(); i++ {
				d.Seq = uint64(i)
				if _, err := s.Seal(buf, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	s := benchSealer(b)
	for _, n := range benchSizes {
		wire, err := s.Seal(nil, Datagram{Version: 2, Channel: ChannelData, Seq: 1, Payload: make([]byte, n)})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := s.Open(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("InPlace/%dB", n), func(b *testing.B) {
			buf := make([]byte, len(wire))
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				copy(buf, wire)
				if _, err := s.OpenInPlace(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
