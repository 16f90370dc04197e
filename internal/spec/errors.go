package spec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is the error returned for every parse or validation failure.
//
// Key is the offending key ("port", "password", "proto", ...) or "" for a
// structural error. Value is the offending value; it is always empty for a
// password or a KDNET key. Input is the whole specification with every
// password and KDNET key replaced by "*". Msg says what is wrong and Hint,
// when not empty, how to fix it.
type Error struct {
	Input, Key, Value, Msg, Hint string
}

// Error formats the error as one line:
//
//	invalid spec "INPUT": KEY=VALUE: MSG; HINT
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid spec ")
	b.WriteString(quote(e.Input))
	val := e.Value
	if isSecretKey(e.Key) {
		val = ""
	}
	switch {
	case e.Key != "" && val != "":
		b.WriteString(": ")
		b.WriteString(e.Key)
		b.WriteString("=")
		b.WriteString(quote(val))
	case e.Key != "":
		b.WriteString(": ")
		b.WriteString(e.Key)
	case val != "":
		b.WriteString(": ")
		b.WriteString(quote(val))
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// quote quotes s for an error message. Unlike %q it leaves backslashes
// alone, as they are common in Windows names (\\host, \\.\pipe\x); control
// characters and invalid UTF-8 are shown as \xNN so that a message stays on
// one line and cannot drive a terminal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1 || unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	b.WriteByte('"')
	return b.String()
}

// isSecretKey reports whether the value of key must never be shown.
func isSecretKey(key string) bool {
	return key == "key" || key == "pwd" || strings.HasPrefix(key, "pass")
}

// newError builds an *Error, redacting secrets from the input and refusing to
// carry the value of a secret key.
func newError(input, key, value, msg, hint string) *Error {
	if isSecretKey(key) {
		value = ""
	}
	return &Error{Input: redact(input), Key: key, Value: value, Msg: msg, Hint: hint}
}

// redact replaces the value of every secret parameter (see secretKeyAt) in s with
// "*". It works on malformed input too: a value ends at a comma, or at a
// closing brace that ends a group (followed by a comma, another brace or the
// end of the string). It over-redacts rather than under-redacts.
func redact(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		n := secretKeyAt(s, i)
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		b.WriteByte('*')
		j := i + n
		for j < len(s) {
			c := s[j]
			if c == ',' {
				break
			}
			if c == '}' && (j+1 == len(s) || s[j+1] == ',' || s[j+1] == '}') {
				break
			}
			j++
		}
		i = j
	}
	return b.String()
}

// secretKeyAt returns the length of a secret "key=" prefix (any case, spaces
// allowed around the key) that starts at a parameter boundary at s[i:], or 0.
// Secret keys are key (KDNET) and every key that starts with "pass" or is
// "pwd", so that a misspelt password key is redacted too.
func secretKeyAt(s string, i int) int {
	if i > 0 {
		switch s[i-1] {
		case ',', ':', '{', ' ', '\t':
		default:
			return 0
		}
	}
	j := i
	for j < len(s) && isWord(s[j:j+1]) {
		j++
	}
	word := strings.ToLower(s[i:j])
	if word != "key" && word != "pwd" && !strings.HasPrefix(word, "pass") {
		return 0
	}
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j < len(s) && s[j] == '=' {
		return j + 1 - i
	}
	return 0
}
