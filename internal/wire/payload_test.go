package wire

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestTypedRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rt   func() (got, want any, err error)
	}{
		{"hello", func() (any, any, error) {
			in := Hello{MinVersion: 1, MaxVersion: 7, Nonce: seq(9), Software: "kdclient/0.1"}
			out, err := DecodeHello(EncodeHello(in))
			return out, in, err
		}},
		{"hello empty software", func() (any, any, error) {
			in := Hello{MinVersion: 1, MaxVersion: 1}
			out, err := DecodeHello(EncodeHello(in))
			return out, in, err
		}},
		{"hello reply no password", func() (any, any, error) {
			in := HelloReply{Version: 1, Nonce: seq(3), Software: "kdsrv/0.1"}
			out, err := DecodeHelloReply(EncodeHelloReply(in))
			return out, in, err
		}},
		{"hello reply password", func() (any, any, error) {
			in := HelloReply{Version: 1, PasswordRequired: true, Software: "x"}
			out, err := DecodeHelloReply(EncodeHelloReply(in))
			return out, in, err
		}},
		{"proof", func() (any, any, error) {
			in := seq(0x80)
			out, err := DecodeProof(EncodeProof(in))
			return out, in, err
		}},
		{"open", func() (any, any, error) {
			in := Open{Target: "com:port=/dev/ttyS0,baud=115200"}
			out, err := DecodeOpen(EncodeOpen(in))
			return out, in, err
		}},
		{"open take over, max target", func() (any, any, error) {
			in := Open{Target: strings.Repeat("é", MaxTarget/2), TakeOver: true}
			out, err := DecodeOpen(EncodeOpen(in))
			return out, in, err
		}},
		{"opened", func() (any, any, error) {
			in := Opened{Session: 0xFFFFFFFF, Info: "Windows 11 x64"}
			out, err := DecodeOpened(EncodeOpened(in))
			return out, in, err
		}},
		{"kd max", func() (any, any, error) {
			p := bytes.Repeat([]byte{7}, MaxKDPayload)
			typ, out, err := DecodeKD(EncodeKD(0xBEEF, p))
			return []any{typ, bytes.Equal(out, p)}, []any{uint16(0xBEEF), true}, err
		}},
		{"error", func() (any, any, error) {
			out, err := DecodeError(EncodeError(InUse, "target com:port=COM1 is in use by session 3"))
			return out, &RemoteError{Code: InUse, Msg: "target com:port=COM1 is in use by session 3"}, err
		}},
		{"bye ok", func() (any, any, error) {
			out, err := DecodeBye(EncodeBye(OK))
			return out, OK, err
		}},
		{"bye reason", func() (any, any, error) {
			out, err := DecodeBye(EncodeBye(ServerShutdown))
			return out, ServerShutdown, err
		}},
		{"state", func() (any, any, error) {
			in := State{State: StateNotResponding, Text: "no answer for 10s"}
			out, err := DecodeState(EncodeState(in))
			return out, in, err
		}},
		{"control", func() (any, any, error) {
			in := Control{ID: 42, Command: CmdGetInfo, Status: OK, Body: []byte("hello")}
			out, err := DecodeControl(EncodeControl(in))
			return out, in, err
		}},
		{"ping", func() (any, any, error) {
			in := [PingSize]byte{1, 2, 3, 4, 5, 6, 7, 8}
			out, err := DecodePing(in[:])
			return out, in, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want, err := tt.rt()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("round trip mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestTypedDecodeErrors(t *testing.T) {
	t.Parallel()
	hello := EncodeHello(Hello{MinVersion: Version, MaxVersion: Version, Software: "abc"})
	reply := EncodeHelloReply(HelloReply{Version: 1, Software: "abc"})
	open := EncodeOpen(Open{Target: "com:port=COM1"})
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	tooLongTarget := append(append(be16(0), be16(MaxTarget+1)...), bytes.Repeat([]byte{'a'}, MaxTarget+1)...)
	badUTF8Target := append(append(be16(0), be16(2)...), 0xC3, 0x28)
	tests := []struct {
		name   string
		decode func() error
	}{
		{"hello short", func() error { _, err := DecodeHello(hello[:10]); return err }},
		{"hello software overrun", func() error { _, err := DecodeHello(hello[:len(hello)-1]); return err }},
		{"hello min 0", func() error {
			_, err := DecodeHello(EncodeHello(Hello{MinVersion: 0, MaxVersion: 1}))
			return err
		}},
		{"hello min > max", func() error {
			_, err := DecodeHello(EncodeHello(Hello{MinVersion: 3, MaxVersion: 2}))
			return err
		}},
		{"hello reply short", func() error { _, err := DecodeHelloReply(reply[:5]); return err }},
		{"hello reply trailing", func() error { _, err := DecodeHelloReply(append(reply, 0)); return err }},
		{"hello reply unknown flag", func() error {
			b := bytes.Clone(reply)
			b[3] |= 0x02
			_, err := DecodeHelloReply(b)
			return err
		}},
		{"proof short", func() error { _, err := DecodeProof(make([]byte, 31)); return err }},
		{"proof long", func() error { _, err := DecodeProof(make([]byte, 33)); return err }},
		{"open short", func() error { _, err := DecodeOpen([]byte{0, 0, 0}); return err }},
		{"open length mismatch", func() error { _, err := DecodeOpen(open[:len(open)-1]); return err }},
		{"open trailing", func() error { _, err := DecodeOpen(append(bytes.Clone(open), 'x')); return err }},
		{"open unknown flag", func() error {
			b := bytes.Clone(open)
			b[1] |= 0x80
			_, err := DecodeOpen(b)
			return err
		}},
		{"open target too long", func() error { _, err := DecodeOpen(tooLongTarget); return err }},
		{"open target not utf-8", func() error { _, err := DecodeOpen(badUTF8Target); return err }},
		{"opened short", func() error { _, err := DecodeOpened([]byte{0, 0, 0, 1, 0}); return err }},
		{"opened length mismatch", func() error { _, err := DecodeOpened([]byte{0, 0, 0, 1, 0, 2, 'a'}); return err }},
		{"kd short", func() error { _, _, err := DecodeKD([]byte{1}); return err }},
		{"error short", func() error { _, err := DecodeError([]byte{1}); return err }},
		{"bye odd", func() error { _, err := DecodeBye([]byte{1}); return err }},
		{"bye long", func() error { _, err := DecodeBye([]byte{0, 1, 2}); return err }},
		{"state short", func() error { _, err := DecodeState(nil); return err }},
		{"control short", func() error { _, err := DecodeControl(make([]byte, 7)); return err }},
		{"ping short", func() error { _, err := DecodePing(make([]byte, 7)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode()
			if code, ok := ErrorCode(err); !ok || code != BadFrame {
				t.Fatalf("error = %v, want a BadFrame ProtocolError", err)
			}
		})
	}
}

func TestHelloToleratesAppendedFields(t *testing.T) {
	t.Parallel()
	in := Hello{MinVersion: 1, MaxVersion: 2, Nonce: seq(1), Software: "future/9"}
	out, err := DecodeHello(append(EncodeHello(in), 0xDE, 0xAD))
	if err != nil || out != in {
		t.Fatalf("DecodeHello with appended bytes = %+v, %v; want %+v", out, err, in)
	}
}

func TestClipText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 100, "plain"},
		{"line1\nline2\x1b[31m", 100, "line1\uFFFDline2\uFFFD[31m"},
		{"bad\xffutf8", 100, "bad\uFFFDutf8"},
		{"ééé", 5, "éé"}, // cut on a rune boundary, not inside é
		{"abcdef", 3, "abc"},
		{"\u0085next", 100, "\uFFFDnext"}, // C1 control
	}
	for _, tt := range tests {
		got := clipText(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("clipText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if !utf8.ValidString(got) || len(got) > tt.max {
			t.Errorf("clipText(%q, %d) = %q: invalid or too long", tt.in, tt.max, got)
		}
		if again := clipText(got, tt.max); again != got {
			t.Errorf("clipText is not idempotent on %q: %q", got, again)
		}
	}
}

func TestEncodersClipText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3000)
	if re, _ := DecodeError(EncodeError(Internal, long)); len(re.Msg) != MaxText {
		t.Errorf("error message not clipped to %d: %d", MaxText, len(re.Msg))
	}
	if h, _ := DecodeHello(EncodeHello(Hello{MinVersion: Version, MaxVersion: Version, Software: long})); len(h.Software) != MaxSoftware {
		t.Errorf("software not clipped to %d: %d", MaxSoftware, len(h.Software))
	}
	if o, _ := DecodeOpened(EncodeOpened(Opened{Info: long})); len(o.Info) != MaxText {
		t.Errorf("info not clipped to %d: %d", MaxText, len(o.Info))
	}
}

func TestCodeStrings(t *testing.T) {
	t.Parallel()
	seen := map[string]Code{}
	for c := OK; c <= Refused; c++ {
		s := c.String()
		if s == "" || strings.HasPrefix(s, "error code") {
			t.Errorf("Code(%d) has no name", c)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("codes %d and %d share the name %q", prev, c, s)
		}
		seen[s] = c
	}
	if got := Code(999).String(); got != "error code 999" {
		t.Errorf("Code(999).String() = %q", got)
	}
	if got := AccessDenied.String(); got != "access denied" {
		t.Errorf("AccessDenied.String() = %q", got)
	}
	if got := Type(0xEE).String(); got != "Type(0xee)" {
		t.Errorf("Type(0xEE).String() = %q", got)
	}
	if TypeKD.String() != "KD" || !TypeKD.Known() || Type(0xEE).Known() {
		t.Error("Type.String/Known broken for KD or 0xEE")
	}
	for _, s := range []StateCode{StateRunning, StateStopped, StateNotResponding, StateReconnected, StateLost, 99} {
		if s.String() == "" {
			t.Errorf("StateCode(%d) has an empty name", s)
		}
	}
	for _, c := range []Command{CmdShutdown, CmdSetOption, CmdGetInfo, 0x8001} {
		if c.String() == "" {
			t.Errorf("Command(%d) has an empty name", c)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	t.Parallel()
	re := &RemoteError{Code: InUse, Msg: "owned by session 3"}
	if got := re.Error(); got != "peer reported target in use: owned by session 3" {
		t.Errorf("RemoteError.Error() = %q", got)
	}
	if got := (&RemoteError{Code: AccessDenied}).Error(); got != "peer reported: access denied" {
		t.Errorf("RemoteError.Error() = %q", got)
	}
	if code, ok := ErrorCode(re); !ok || code != InUse {
		t.Errorf("ErrorCode(RemoteError) = %v, %v", code, ok)
	}
	if _, ok := ErrorCode(bytes.ErrTooLarge); ok {
		t.Error("ErrorCode found a code in a plain error")
	}
}

func TestNoticeRoundTrip(t *testing.T) {
	t.Parallel()
	n, err := DecodeNotice(EncodeNotice(BadRequest, "KD packet of type 0 refused"))
	if err != nil || n.Code != BadRequest || n.Text != "KD packet of type 0 refused" {
		t.Fatalf("DecodeNotice = %+v, %v", n, err)
	}
	if n.String() != n.Text || (Notice{Code: Busy}).String() != "server busy" {
		t.Errorf("Notice.String: %q / %q", n.String(), Notice{Code: Busy}.String())
	}
	if _, err := DecodeNotice([]byte{0}); err == nil {
		t.Error("a 1-byte Notice was accepted")
	}
	if n, _ := DecodeNotice(EncodeNotice(OK, "bell\a")); strings.ContainsRune(n.Text, '\a') {
		t.Errorf("control character survived: %q", n.Text)
	}
}

func TestOpenWatch(t *testing.T) {
	t.Parallel()
	o, err := DecodeOpen(EncodeOpen(Open{Target: "com:pipe,port=/tmp/x", Watch: true}))
	if err != nil || !o.Watch || o.TakeOver {
		t.Fatalf("DecodeOpen = %+v, %v", o, err)
	}
	if _, err := DecodeOpen(EncodeOpen(Open{Target: "x", Watch: true, TakeOver: true})); err == nil {
		t.Error("Open with both watch and take-over was accepted")
	}
	if _, err := DecodeOpen([]byte{0, 4, 0, 0}); err == nil {
		t.Error("Open with an unknown flag bit was accepted")
	}
}
