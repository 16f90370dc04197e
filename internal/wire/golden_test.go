package wire

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kdsrv/internal/testkit"
)

// goldenPassword is the password the golden Auth/AuthOK proofs are built with.
const goldenPassword = "s3cret"

// goldenSalt is the salt of the golden HelloReply: a0..af.
func goldenSalt() (s [SaltSize]byte) {
	for i := range s {
		s[i] = 0xa0 + byte(i)
	}
	return s
}

func seq(start byte) (n [32]byte) {
	for i := range n {
		n[i] = start + byte(i)
	}
	return n
}

var (
	goldenHello      = Hello{MinVersion: 2, MaxVersion: 2, Nonce: seq(0x00), Software: "kdclient/0.1"}
	goldenHelloReply = HelloReply{Version: 2, PasswordRequired: true, Nonce: seq(0x20), Salt: goldenSalt(), Software: "kdsrv/0.1"}
)

// goldenProofs computes the proofs for the golden Hello/HelloReply pair, so
// that the Auth/AuthOK vectors pin the authentication math as well.
func goldenProofs(t testing.TB) (client, server [ProofSize]byte) {
	t.Helper()
	tr := newTranscript()
	tr.add(AppendFrame(nil, TypeHello, EncodeHello(goldenHello)))
	tr.add(AppendFrame(nil, TypeHelloReply, EncodeHelloReply(goldenHelloReply)))
	tr.add(nil) // no channel binding
	salt := goldenSalt()
	key, err := (*KeyCache)(nil).key(goldenPassword, salt[:])
	if err != nil {
		t.Fatal(err)
	}
	return proofs(key, tr.sum())
}

type goldenCase struct {
	name    string
	comment string
	typ     Type
	payload []byte
}

func goldenCases(t testing.TB) []goldenCase {
	cp, sp := goldenProofs(t)
	kdPayload := append([]byte{0x46, 0x31, 0x00, 0x00}, make([]byte, 12)...)
	return []goldenCase{
		{"hello", "Hello: versions 2-2, nonce 00..1f, software kdclient/0.1", TypeHello, EncodeHello(goldenHello)},
		{"hello_reply", "HelloReply: version 2, password required, nonce 20..3f, salt a0..af, software kdsrv/0.1", TypeHelloReply, EncodeHelloReply(goldenHelloReply)},
		{"auth", "Auth: client proof for the hello/hello_reply vectors, password s3cret, no binding", TypeAuth, EncodeProof(cp)},
		{"auth_ok", "AuthOK: server proof for the hello/hello_reply vectors, password s3cret, no binding", TypeAuthOK, EncodeProof(sp)},
		{"open_watch", "Open: watch the console, target com:pipe,port=/tmp/vm.sock", TypeOpen, EncodeOpen(Open{Target: "com:pipe,port=/tmp/vm.sock", Watch: true})},
		{"notice", "Notice: bad request, KD packet refused", TypeNotice, EncodeNotice(BadRequest, "KD packet of type 0 (UNUSED) refused: a debugger never sends it to a target")},
		{"console", "Console: boot text", TypeConsole, []byte("Booting Windows...\r\n")},
		{"open", "Open: take over, target com:pipe,port=/tmp/vm.sock,resets=0,reconnect", TypeOpen, EncodeOpen(Open{Target: "com:pipe,port=/tmp/vm.sock,resets=0,reconnect", TakeOver: true})},
		{"opened", "Opened: session 7, info", TypeOpened, EncodeOpened(Opened{Session: 7, Info: "Windows 10 x64 build 19041 on /tmp/vm.sock"})},
		{"detach", "Detach (empty)", TypeDetach, nil},
		{"detached", "Detached (empty)", TypeDetached, nil},
		{"state", "State: stopped, text", TypeState, EncodeState(State{State: StateStopped, Text: "breakpoint 0"})},
		{"kd", "KD: packet type 2 (STATE_MANIPULATE), 16 payload bytes", TypeKD, EncodeKD(2, kdPayload)},
		{"break_in", "BreakIn (empty)", TypeBreakIn, nil},
		{"reset", "Reset (empty)", TypeReset, nil},
		{"control", "Control request: id 1, set-option, body readahead=0", TypeControl, EncodeControl(Control{ID: 1, Command: CmdSetOption, Body: []byte("readahead=0")})},
		{"control_reply", "Control reply: id 1, shutdown, status refused", TypeControl, EncodeControl(Control{ID: 1, Command: CmdShutdown, Status: Refused})},
		{"ping", "Ping: 01..08", TypePing, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"pong", "Pong: 01..08", TypePong, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"error", "Error: access denied", TypeError, EncodeError(AccessDenied, "access denied")},
		{"error_too_many", "Error: too many failed attempts", TypeError, EncodeError(TooManyAttempts, "too many failed attempts; try again in 8 s")},
		{"bye", "Bye: normal close (empty)", TypeBye, EncodeBye(OK)},
		{"bye_shutdown", "Bye: reason server shutdown", TypeBye, EncodeBye(ServerShutdown)},
	}
}

// formatHex renders a frame as commented hex: the header on one line, then
// the payload 16 bytes a line.
func formatHex(comment string, frame []byte) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n# regenerate: go test ./internal/wire -run TestGolden -update\n", comment)
	sb.WriteString(spaced(frame[:HeaderSize]) + "\n")
	for p := frame[HeaderSize:]; len(p) > 0; {
		n := min(16, len(p))
		sb.WriteString(spaced(p[:n]) + "\n")
		p = p[n:]
	}
	return sb.String()
}

func spaced(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, " ")
}

func parseHex(t *testing.T, text string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.Lines(text) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("bad hex in golden file: %v", err)
	}
	return b
}

func TestGolden(t *testing.T) {
	cases := goldenCases(t)
	seen := map[Type]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame := AppendFrame(nil, tc.typ, tc.payload)
			path := filepath.Join("testdata", "golden", tc.name+".hex")
			if testkit.Updating() {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(formatHex(tc.comment, frame)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			want := parseHex(t, string(text))
			if !bytes.Equal(frame, want) {
				t.Fatalf("encoding of %s changed:\n got %x\nwant %x\n(if intended, bump docs/protocol.md and run -update)", tc.name, frame, want)
			}
			// The golden bytes decode back to the same frame.
			f, err := NewDecoder(bytes.NewReader(want)).Next()
			if err != nil {
				t.Fatalf("decoding golden %s: %v", tc.name, err)
			}
			if f.Type != tc.typ || !bytes.Equal(f.Payload, tc.payload) {
				t.Fatalf("golden %s decodes to %s %x", tc.name, f.Type, f.Payload)
			}
		})
		seen[tc.typ] = true
	}
	for typ := range typeInfo {
		if !seen[typ] {
			t.Errorf("frame type %s has no golden vector", typ)
		}
	}
}

// TestGoldenTypedDecode checks that the typed decoders read the golden
// payloads back to the values they were built from.
func TestGoldenTypedDecode(t *testing.T) {
	cases := goldenCases(t)
	byName := map[string][]byte{}
	for _, c := range cases {
		byName[c.name] = c.payload
	}
	h, err := DecodeHello(byName["hello"])
	if err != nil || h != goldenHello {
		t.Errorf("DecodeHello = %+v, %v", h, err)
	}
	r, err := DecodeHelloReply(byName["hello_reply"])
	if err != nil || r != goldenHelloReply {
		t.Errorf("DecodeHelloReply = %+v, %v", r, err)
	}
	o, err := DecodeOpen(byName["open"])
	if err != nil || o != (Open{Target: "com:pipe,port=/tmp/vm.sock,resets=0,reconnect", TakeOver: true}) {
		t.Errorf("DecodeOpen = %+v, %v", o, err)
	}
	op, err := DecodeOpened(byName["opened"])
	if err != nil || op.Session != 7 {
		t.Errorf("DecodeOpened = %+v, %v", op, err)
	}
	pt, pl, err := DecodeKD(byName["kd"])
	if err != nil || pt != 2 || len(pl) != 16 || pl[0] != 0x46 {
		t.Errorf("DecodeKD = %d %x %v", pt, pl, err)
	}
	ctl, err := DecodeControl(byName["control_reply"])
	if err != nil || ctl.Status != Refused || ctl.Command != CmdShutdown || len(ctl.Body) != 0 {
		t.Errorf("DecodeControl = %+v, %v", ctl, err)
	}
	re, err := DecodeError(byName["error"])
	if err != nil || re.Code != AccessDenied || re.Msg != "access denied" {
		t.Errorf("DecodeError = %+v, %v", re, err)
	}
	code, err := DecodeBye(byName["bye_shutdown"])
	if err != nil || code != ServerShutdown {
		t.Errorf("DecodeBye = %v, %v", code, err)
	}
	st, err := DecodeState(byName["state"])
	if err != nil || st != (State{State: StateStopped, Text: "breakpoint 0"}) {
		t.Errorf("DecodeState = %+v, %v", st, err)
	}
}
