package kdnet

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strings"
)

// KeySize is the length in bytes of a KDNET key (AES-256).
const KeySize = 32

// Key-string limits.
const (
	keyParts       = 4  // a.b.c.d
	maxKeyPartLen  = 13 // base-36 digits; 36^13 > 2^64
	redactedKeyStr = "kdnet-key(redacted)"
)

// ErrKey is wrapped by every error ParseKey returns.
var ErrKey = errors.New("kdnet: invalid key")

// Key is a 32-byte KDNET key: either the control key parsed from the user's
// a.b.c.d string or a negotiated data key.
//
// A Key never reveals its bytes when formatted, logged or marshalled: every
// fmt verb and slog print "kdnet-key(redacted)", and the bytes are in an
// unexported field so encoding/json and similar see nothing. Use [Key.Bytes]
// to hand the key to [NewSealer] or [DeriveDataKey].
type Key struct {
	b [KeySize]byte
}

// KeyFromBytes wraps raw key bytes in a Key.
func KeyFromBytes(b [KeySize]byte) Key { return Key{b: b} }

// ParseKey parses a key in bcdedit's a.b.c.d form: four parts separated by
// dots, each 1 to 13 base-36 digits (0-9, a-z, case-insensitive) whose value
// fits in 64 bits. The key bytes are the four values as little-endian
// uint64s, concatenated. Leading and trailing white space is ignored.
//
// Errors wrap [ErrKey], name the offending part ("part 3 of the key ...")
// and never quote the key or any part of it.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, fmt.Errorf("%w: the key is empty; give it as a.b.c.d, as shown by bcdedit /dbgsettings on the target", ErrKey)
	}
	if n := strings.Count(s, ".") + 1; n != keyParts {
		return Key{}, fmt.Errorf("%w: the key has %d dot-separated parts; a KDNET key has exactly 4 (a.b.c.d, as shown by bcdedit /dbgsettings on the target)", ErrKey, n)
	}
	var k Key
	for i := range keyParts {
		part, rest, _ := strings.Cut(s, ".")
		s = rest
		v, err := parseKeyPart(part)
		if err != nil {
			return Key{}, fmt.Errorf("%w: part %d of the key %v", ErrKey, i+1, err)
		}
		binary.LittleEndian.PutUint64(k.b[i*8:], v)
	}
	return k, nil
}

// parseKeyPart decodes one base-36 part. Its errors complete the sentence
// "part N of the key ..." and never contain the part's characters.
func parseKeyPart(p string) (uint64, error) {
	if p == "" {
		return 0, errors.New("is empty; each part is 1 to 13 base-36 digits (0-9, a-z)")
	}
	if len(p) > maxKeyPartLen {
		return 0, fmt.Errorf("is %d characters long; each part is at most 13 base-36 digits (0-9, a-z)", len(p))
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		c := p[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'z':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'Z':
			d = uint64(c-'A') + 10
		default:
			return 0, fmt.Errorf("has a character other than 0-9 or a-z at position %d", i+1)
		}
		hi, lo := bits.Mul64(v, 36)
		lo, carry := bits.Add64(lo, d, 0)
		if hi != 0 || carry != 0 {
			return 0, errors.New("is larger than 2^64-1 (the largest part is 3w5e11264sgsf)")
		}
		v = lo
	}
	return v, nil
}

// Bytes returns the raw key bytes. Treat them as a secret.
func (k Key) Bytes() [KeySize]byte { return k.b }

// IsZero reports whether k is the all-zero key (for example the zero Key).
func (k Key) IsZero() bool { return k.b == [KeySize]byte{} }

// Equal reports, in constant time, whether k and o are the same key.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// String returns "kdnet-key(redacted)"; it never reveals the key.
func (k Key) String() string { return redactedKeyStr }

// Format implements fmt.Formatter so that every verb, including %x, %d and
// %#v, prints "kdnet-key(redacted)" instead of the key bytes.
func (k Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redactedKeyStr)) }

// LogValue implements slog.LogValuer; a logged Key is redacted.
func (k Key) LogValue() slog.Value { return slog.StringValue(redactedKeyStr) }
