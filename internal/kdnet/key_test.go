package kdnet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"kdsrv/internal/testkit"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func leKey(parts ...uint64) [KeySize]byte {
	var k [KeySize]byte
	for i, p := range parts {
		binary.LittleEndian.PutUint64(k[i*8:], p)
	}
	return k
}

func TestParseKeyValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want [KeySize]byte
	}{
		{"1.1.1.1", [KeySize]byte(testkit.Unhex(t, "0100000000000000 0100000000000000 0100000000000000 0100000000000000"))},
		{"1.z.10.3w5e11264sgsf", [KeySize]byte(testkit.Unhex(t, "0100000000000000 2300000000000000 2400000000000000 ffffffffffffffff"))},
		{"1.Z.10.3W5E11264SGSF", leKey(1, 35, 36, ^uint64(0))},
		{"0.0.0.0", leKey(0, 0, 0, 0)},
		{"0000000000001.1.1.1", leKey(1, 1, 1, 1)}, // 13 digits with leading zeros
		{"  1.2.3.4\n", leKey(1, 2, 3, 4)},         // surrounding white space
		{"a.b.c.d", leKey(10, 11, 12, 13)},
		{"zz.100.3w5e11264sgse.1a", leKey(36*36-1, 36*36, ^uint64(0)-1, 46)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKey(tt.in)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got := k.Bytes(); got != tt.want {
				t.Errorf("bytes = %x, want %x", got, tt.want)
			}
		})
	}
}

func TestParseKeyInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, wantMsg string
	}{
		{"empty", "", "the key is empty"},
		{"blank", "   ", "the key is empty"},
		{"three parts", "1.2.3", "has 3 dot-separated parts"},
		{"five parts", "1.2.3.4.5", "has 5 dot-separated parts"},
		{"one part", "12345", "has 1 dot-separated parts"},
		{"trailing dot", "1.2.3.", "part 4 of the key is empty"},
		{"leading dot", ".1.2.3", "part 1 of the key is empty"},
		{"empty part", "1..3.4", "part 2 of the key is empty"},
		{"14 chars", "1.2.00000000000001.4", "part 3 of the key is 14 characters long"},
		{"non-base36", "1.2.3.ab!d", "part 4 of the key has a character other than 0-9 or a-z at position 3"},
		{"inner space", "1.2 .3.4", "part 2 of the key has a character other than 0-9 or a-z at position 2"},
		{"underscore", "1_0.2.3.4", "part 1 of the key has a character other than 0-9 or a-z at position 2"},
		{"non-ascii", "1.2.é.4", "part 3 of the key has a character other than 0-9 or a-z at position 1"},
		{"overflow 2^64", "1.2.3.3w5e11264sgsg", "part 4 of the key is larger than 2^64-1"},
		{"overflow 13 z", "zzzzzzzzzzzzz.1.1.1", "part 1 of the key is larger than 2^64-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKey(tt.in)
			if err == nil {
				t.Fatalf("ParseKey(%q) = %x, want error", tt.in, k.Bytes())
			}
			if !errors.Is(err, ErrKey) {
				t.Errorf("error %v does not wrap ErrKey", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if !k.IsZero() {
				t.Errorf("failed parse returned a non-zero key")
			}
			assertNoKeyText(t, err, tt.in)
		})
	}
}

// assertNoKeyText fails if err quotes any part of the key (parts of three or
// more characters; shorter ones are too common to tell apart).
func assertNoKeyText(t *testing.T, err error, key string) {
	t.Helper()
	msg := strings.TrimPrefix(err.Error(), ErrKey.Error())
	for _, part := range strings.Split(strings.TrimSpace(key), ".") {
		if len(part) >= 3 && strings.Contains(msg, part) {
			t.Errorf("error %q reveals key text %q", err, part)
		}
	}
}

// keyErrTemplates are the only shapes (digits replaced by #) a ParseKey
// error may take: they contain no text from the key besides counts and
// positions.
var keyErrTemplates = func() map[string]bool {
	m := map[string]bool{}
	for _, in := range []string{"", "1.2.3", "1..3.4", "1.2.3.00000000000000", "1.2.3.!", "1.2.3.zzzzzzzzzzzzz"} {
		_, err := ParseKey(in)
		m[digitRun.ReplaceAllString(err.Error(), "#")] = true
	}
	return m
}()

var digitRun = regexp.MustCompile(`[0-9]+`)

func TestKeyNeverPrinted(t *testing.T) {
	t.Parallel()
	k, err := ParseKey("1.z.10.3w5e11264sgsf")
	if err != nil {
		t.Fatal(err)
	}
	b := k.Bytes()
	secretHex := hex.EncodeToString(b[:])
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("session", "key", k, "keyptr", &k)
	jsonOut, err := json.Marshal(struct{ K Key }{k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String": k.String(),
		"%v":     fmt.Sprintf("%v", k),
		"%+v":    fmt.Sprintf("%+v", k),
		"%#v":    fmt.Sprintf("%#v", k),
		"%s":     fmt.Sprintf("%s", k),
		"%x":     fmt.Sprintf("%x", k),
		"%X":     fmt.Sprintf("%X", k),
		"%d":     fmt.Sprintf("%d", k),
		"%q":     fmt.Sprintf("%q", k),
		"ptr %v": fmt.Sprintf("%v", &k),
		"struct": fmt.Sprintf("%+v", struct{ K Key }{k}),
		"slog":   logBuf.String(),
		"json":   string(jsonOut),
	}
	for name, out := range outputs {
		if strings.Contains(strings.ToLower(out), secretHex) {
			t.Errorf("%s output %q reveals the key", name, out)
		}
		switch name {
		case "slog":
			if !strings.Contains(out, `"key":"kdnet-key(redacted)"`) || !strings.Contains(out, `"keyptr":"kdnet-key(redacted)"`) {
				t.Errorf("slog output %q does not redact the key", out)
			}
		case "json":
			if out != `{"K":{}}` {
				t.Errorf("json output %q, want {\"K\":{}}", out)
			}
		default: // fmt: the key's numbers (1, 35, 36, 255) must not appear
			if strings.ContainsAny(out, "0123456789") || !strings.Contains(out, "kdnet-key(redacted)") {
				t.Errorf("%s output %q does not redact the key", name, out)
			}
		}
	}
}

func TestKeyEqual(t *testing.T) {
	t.Parallel()
	a := KeyFromBytes(leKey(1, 2, 3, 4))
	if !a.Equal(KeyFromBytes(leKey(1, 2, 3, 4))) {
		t.Error("equal keys compare unequal")
	}
	if a.Equal(KeyFromBytes(leKey(1, 2, 3, 5))) {
		t.Error("different keys compare equal")
	}
	if a.IsZero() || !(Key{}).IsZero() {
		t.Error("IsZero wrong")
	}
}
