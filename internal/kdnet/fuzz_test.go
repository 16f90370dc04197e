package kdnet

import (
	"bytes"
	"encoding/binary"
	"kdsrv/internal/testkit"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen: Open never panics on arbitrary bytes, agrees with OpenInPlace,
// and whatever it accepts re-seals to exactly the same bytes. Seeds in
// testdata/fuzz/FuzzOpen hold the captured datagrams.
func FuzzOpen(f *testing.F) {
	ctl, s := captureSealers(f)
	f.Add(testkit.Unhex(f, captureBreakIn))
	w, _ := s.Seal(nil, Datagram{Version: 2, Channel: ChannelControl, Seq: 1, Payload: []byte("seed")})
	f.Add(w)
	f.Add([]byte("MDBG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, sealer := range []*Sealer{ctl, s} {
			in := bytes.Clone(b)
			d, err := sealer.Open(in)
			if !bytes.Equal(in, b) {
				t.Fatal("Open modified its input")
			}
			d2, err2 := sealer.OpenInPlace(bytes.Clone(b))
			if (err == nil) != (err2 == nil) || d.Seq != d2.Seq || !bytes.Equal(d.Payload, d2.Payload) {
				t.Fatalf("Open (%v) and OpenInPlace (%v) disagree", err, err2)
			}
			if err != nil {
				if d.Payload != nil {
					t.Fatalf("error %v with a payload", err)
				}
				continue
			}
			checkReseals(t, sealer, d, b)
		}
	})
}

// FuzzParseKey: ParseKey never panics; an accepted key survives a round trip
// through its canonical a.b.c.d form; errors only take known shapes, which
// contain no key text.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"1.1.1.1", "1.z.10.3w5e11264sgsf", "1.2.3", "1..3.4", "zzzzzzzzzzzzz.1.1.1", "1.2.3.!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if shape := digitRun.ReplaceAllString(err.Error(), "#"); !keyErrTemplates[shape] {
				t.Fatalf("ParseKey(%q): unexpected error shape %q", s, shape)
			}
			return
		}
		b := k.Bytes()
		parts := make([]string, 4)
		for i := range parts {
			parts[i] = strconv.FormatUint(binary.LittleEndian.Uint64(b[i*8:]), 36)
		}
		k2, err := ParseKey(strings.Join(parts, "."))
		if err != nil || !k2.Equal(k) {
			t.Fatalf("canonical form of %q does not parse back: %v", s, err)
		}
	})
}

// FuzzParsePoke: ParsePoke never panics; what it accepts reads the documented
// offsets and survives Marshal.
func FuzzParsePoke(f *testing.F) {
	f.Add(BuildPoke([32]byte{1, 2, 3}, 50000))
	f.Add(make([]byte, 88))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePoke(body)
		if err != nil {
			return
		}
		if !bytes.Equal(p.ClientRandom[:], body[2:34]) || p.HostPort() != binary.BigEndian.Uint16(body[86:88]) {
			t.Fatalf("ParsePoke read the wrong offsets: %+v", p)
		}
		m := p.Marshal()
		if !bytes.Equal(m[:88], body[:88]) {
			t.Fatalf("Marshal changed the known fields:\n got %x\nwant %x", m[:88], body[:88])
		}
		if p2, err := ParsePoke(m); err != nil || p2 != p {
			t.Fatalf("Marshal/ParsePoke round trip: %+v, %v", p2, err)
		}
	})
}

// FuzzParseResponse: ParseResponse never panics; what it accepts is a
// ResponseSize-byte body whose randoms sit at the documented offsets.
func FuzzParseResponse(f *testing.F) {
	f.Add(BuildResponse([32]byte{1}, [32]byte{2}))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResponse(body)
		if err != nil {
			return
		}
		if len(body) != ResponseSize || !bytes.Equal(r.ClientRandom[:], body[2:34]) || !bytes.Equal(r.HostRandom[:], body[34:66]) {
			t.Fatalf("ParseResponse accepted %d bytes or read the wrong offsets", len(body))
		}
	})
}
