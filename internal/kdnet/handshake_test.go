package kdnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"kdsrv/internal/testkit"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCaptureHandshake replays the captured Windows 8.1 handshake: the
// target's poke and the host's response open with the control key, parse,
// re-seal byte for byte, and the data key derived from the response is the
// one that opens the captured data-channel traffic.
func TestCaptureHandshake(t *testing.T) {
	t.Parallel()
	ctl, _ := captureSealers(t)
	controlKey := captureControlKey(t)
	pokeWire := readHexFile(t, "capture/target-poke.hex")
	respWire := readHexFile(t, "capture/host-response.hex")

	pd, err := ctl.Open(pokeWire)
	if err != nil {
		t.Fatalf("open poke: %v", err)
	}
	if pd.Channel != ChannelControl || pd.HostToTarget || pd.Seq != capturePokeSeq || pd.Version != 2 || len(pd.Payload) != PokeSize {
		t.Fatalf("poke datagram = ch %s h2t %v seq %d v%d %d bytes", pd.Channel, pd.HostToTarget, pd.Seq, pd.Version, len(pd.Payload))
	}
	poke, err := ParsePoke(pd.Payload)
	if err != nil {
		t.Fatalf("ParsePoke: %v", err)
	}
	target := netip.MustParseAddrPort("192.168.0.13:50000")
	host := netip.MustParseAddrPort("192.168.0.11:50000")
	wantPoke := Poke{
		ClientRandom: [32]byte(testkit.Unhex(t, captureClient)),
		Endpoints:    [3]netip.AddrPort{target, host, host},
	}
	if diff := cmp.Diff(wantPoke, poke, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("poke (-want +got):\n%s", diff)
	}
	if poke.HostPort() != 50000 {
		t.Errorf("HostPort = %d, want 50000", poke.HostPort())
	}
	// Windows leaves the rest of the poke zero, so Marshal reproduces it.
	if got := poke.Marshal(); !bytes.Equal(got, pd.Payload) {
		t.Errorf("poke Marshal differs from the captured body")
	}
	if w, err := ctl.Seal(nil, pd); err != nil || !bytes.Equal(w, pokeWire) {
		t.Errorf("re-sealed poke differs from the capture (%v)", err)
	}

	rd, err := ctl.Open(respWire)
	if err != nil {
		t.Fatalf("open response: %v", err)
	}
	if rd.Channel != ChannelControl || !rd.HostToTarget || rd.Seq != pd.Seq || len(rd.Payload) != ResponseSize {
		t.Fatalf("response datagram = ch %s h2t %v seq %d %d bytes; want control, host→target, the poke's seq", rd.Channel, rd.HostToTarget, rd.Seq, len(rd.Payload))
	}
	resp, err := ParseResponse(rd.Payload)
	if err != nil {
		t.Fatalf("ParseResponse: %v", err)
	}
	if resp.ClientRandom != poke.ClientRandom || resp.HostRandom != [32]byte(testkit.Unhex(t, captureHostRand)) {
		t.Errorf("response randoms = %x / %x", resp.ClientRandom, resp.HostRandom)
	}

	wantData := key32(t, captureDataKey)
	if got := DeriveDataKey(controlKey, rd.Payload); got != wantData {
		t.Errorf("DeriveDataKey = %x, want %x", got, wantData)
	}
	got, err := AcceptResponse(controlKey, poke.ClientRandom, rd.Payload)
	if err != nil || got != wantData {
		t.Errorf("AcceptResponse = %x, %v", got, err)
	}
	// The host side rebuilds the identical body and key from the poke and
	// its random, and sealing it with the poke's seq gives the capture.
	body, dk := AnswerPoke(controlKey, poke, resp.HostRandom)
	if !bytes.Equal(body, rd.Payload) || dk != wantData {
		t.Errorf("AnswerPoke body/key differ from the capture")
	}
	w, err := ctl.Seal(nil, Datagram{Version: pd.Version, Channel: ChannelControl, Seq: pd.Seq, HostToTarget: true, Payload: body})
	if err != nil || !bytes.Equal(w, respWire) {
		t.Errorf("sealed response differs from the capture (%v)", err)
	}

	// The derived key opens the captured data-channel break-in.
	s, err := ctl.WithDataKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.Open(testkit.Unhex(t, captureBreakIn)); err != nil || !bytes.Equal(d.Payload, []byte{0x62}) {
		t.Errorf("derived key does not open the break-in: %v", err)
	}
}

func TestPokeBuildParse(t *testing.T) {
	t.Parallel()
	var cr [32]byte
	for i := range cr {
		cr[i] = byte(i + 1)
	}
	for _, port := range []uint16{0, 1, 50000, 0xffff} {
		b := BuildPoke(cr, port)
		if len(b) != PokeSize || b[0] != 1 || b[1] != 1 {
			t.Fatalf("BuildPoke header/len: % x len %d", b[:2], len(b))
		}
		if !bytes.Equal(b[2:34], cr[:]) {
			t.Errorf("client random not at body+2")
		}
		if got := binary.BigEndian.Uint16(b[86:]); got != port {
			t.Errorf("port at body+86 = %d, want %d", got, port)
		}
		for i, c := range b {
			if (i < 34 || i >= 86 && i < 88) || c == 0 {
				continue
			}
			t.Errorf("byte %d = %#x, want 0", i, c)
		}
		p, err := ParsePoke(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.ClientRandom != cr || p.HostPort() != port || p.Endpoints[0].IsValid() || p.Endpoints[0].Port() != 0 {
			t.Errorf("ParsePoke(BuildPoke(%d)) = %+v", port, p)
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Errorf("Marshal(ParsePoke(b)) != b")
		}
	}
	// IPv6 and IPv4 endpoints survive a round trip.
	p := Poke{ClientRandom: cr, Endpoints: [3]netip.AddrPort{
		netip.MustParseAddrPort("[fe80::1]:50001"),
		netip.MustParseAddrPort("10.0.0.2:50002"),
		netip.MustParseAddrPort("[2001:db8::2]:50003"),
	}}
	got, err := ParsePoke(p.Marshal())
	if err != nil || got != p {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, p)
	}
	// Longer bodies are accepted; the tail is ignored.
	if got, err := ParsePoke(append(p.Marshal(), 0xff, 0xff)); err != nil || got != p {
		t.Errorf("long body: %+v, %v", got, err)
	}
}

func TestResponseBuildParse(t *testing.T) {
	t.Parallel()
	var cr, hr [32]byte
	for i := range cr {
		cr[i], hr[i] = byte(i), byte(0xff-i)
	}
	b := BuildResponse(cr, hr)
	if len(b) != ResponseSize || b[0] != 1 || b[1] != 2 || !bytes.Equal(b[2:34], cr[:]) || !bytes.Equal(b[34:66], hr[:]) || !bytes.Equal(b[66:], make([]byte, 256)) {
		t.Fatalf("BuildResponse layout wrong: %x", b)
	}
	r, err := ParseResponse(b)
	if err != nil || r.ClientRandom != cr || r.HostRandom != hr {
		t.Fatalf("ParseResponse = %+v, %v", r, err)
	}
	// The data key covers the whole body, not just the randoms.
	ck := leKey(1, 2, 3, 4)
	k1 := DeriveDataKey(ck, b)
	b2 := bytes.Clone(b)
	b2[321] = 1
	if DeriveDataKey(ck, b2) == k1 {
		t.Error("data key ignores the tail of the body")
	}
	if DeriveDataKey(ck, append(bytes.Clone(b), 7, 7)) != k1 {
		t.Error("bytes beyond 322 change the data key")
	}
	if DeriveDataKey(leKey(1, 2, 3, 5), b) == k1 {
		t.Error("data key ignores the control key")
	}
	// The target refuses a response to another poke.
	other := cr
	other[31] ^= 1
	if _, err := AcceptResponse(ck, other, b); !errors.Is(err, ErrHandshake) {
		t.Errorf("AcceptResponse with wrong client random: %v", err)
	}
	if k, err := AcceptResponse(ck, cr, b); err != nil || k != k1 {
		t.Errorf("AcceptResponse: %v", err)
	}
}

func TestHandshakeParseErrors(t *testing.T) {
	t.Parallel()
	poke := BuildPoke([32]byte{1}, 5)
	resp := BuildResponse([32]byte{1}, [32]byte{2})
	with := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		msg   string
	}{
		{"poke empty", parsePokeErr, nil, "poke body is 0 bytes, need at least 88"},
		{"poke 87 bytes", parsePokeErr, poke[:87], "87 bytes"},
		{"poke version", parsePokeErr, with(poke, 0, 2), "handshake version 2"},
		{"poke kind", parsePokeErr, with(poke, 1, 2), "kind 2, want 1"},
		{"response as poke", parsePokeErr, resp, "kind 2, want 1"},
		{"response short", parseRespErr, resp[:321], "need at least 322"},
		{"response long", parseRespErr, append(bytes.Clone(resp), 0), "want exactly 322"},
		{"response kind", parseRespErr, with(resp, 1, 1), "kind 1, want 2"},
		{"poke as response", parseRespErr, poke, "kind 1, want 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.parse(tt.in)
			if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want ErrHandshake containing %q", err, tt.msg)
			}
		})
	}
}

func parsePokeErr(b []byte) error { _, err := ParsePoke(b); return err }
func parseRespErr(b []byte) error { _, err := ParseResponse(b); return err }

// TestGoldenSession seals a deterministic handshake and first data packet
// and compares them with testdata/golden (regenerate with -update). It
// checks the whole flow end to end: the target's poke, the host's response
// with the same seq, both sides deriving the same data key, and a KD packet
// on the data channel.
func TestGoldenSession(t *testing.T) {
	t.Parallel()
	controlKey := leKey(1, 35, 36, ^uint64(0)) // 1.z.10.3w5e11264sgsf
	ctl, err := NewSealer(controlKey)
	if err != nil {
		t.Fatal(err)
	}
	var cr, hr [32]byte
	for i := range cr {
		cr[i], hr[i] = byte(i), byte(0x80+i)
	}
	p := Poke{ClientRandom: cr, Endpoints: [3]netip.AddrPort{
		netip.MustParseAddrPort("192.168.0.13:50000"),
		netip.MustParseAddrPort("192.168.0.11:50000"),
	}}
	// Host: open, parse, answer.
	pd := sealGolden(t, ctl, ctl, Datagram{Version: 2, Channel: ChannelControl, Seq: 9, Payload: p.Marshal()}, "poke.hex")
	gotPoke, err := ParsePoke(pd.Payload)
	if err != nil || gotPoke != p || gotPoke.HostPort() != 0 {
		t.Fatalf("host parsed poke %+v, %v", gotPoke, err)
	}
	body, hostKey := AnswerPoke(controlKey, gotPoke, hr)
	// Target: open the response, check it answers its poke, derive the key.
	rd := sealGolden(t, ctl, ctl, Datagram{Version: pd.Version, Channel: ChannelControl, Seq: pd.Seq, HostToTarget: true, Payload: body}, "response.hex")
	targetKey, err := AcceptResponse(controlKey, cr, rd.Payload)
	if err != nil || targetKey != hostKey {
		t.Fatalf("target key %x, host key %x, %v", targetKey, hostKey, err)
	}
	golden(t, "data-key.hex", targetKey[:])

	host, err := ctl.WithDataKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := ctl.WithDataKey(targetKey)
	if err != nil {
		t.Fatal(err)
	}
	// Host GetVersion request (docs/kd-protocol.md V4, without the 0xAA trailer).
	getVersion := append(testkit.Unhex(t, "30303030 0200 3800 00000080 77000000 46310000"), make([]byte, 52)...)
	d := sealGolden(t, host, tgt, Datagram{Version: 2, Channel: ChannelData, Seq: 1, HostToTarget: true, Payload: getVersion}, "data-getversion.hex")
	if !bytes.Equal(d.Payload, getVersion) || d.Seq != 1 || !d.HostToTarget {
		t.Errorf("target opened %+v", d)
	}
}

// sealGolden seals d with from, compares the sealed datagram with the
// golden file name, and returns the datagram as to opens it.
func sealGolden(t *testing.T, from, to *Sealer, d Datagram, name string) Datagram {
	t.Helper()
	b, err := from.Seal(nil, d)
	if err != nil {
		t.Fatalf("%s: seal: %v", name, err)
	}
	golden(t, name, b)
	opened, err := to.Open(b)
	if err != nil {
		t.Fatalf("%s: open: %v", name, err)
	}
	return opened
}
