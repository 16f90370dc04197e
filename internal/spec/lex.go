package spec

import (
	"strings"
)

// Limits that keep the parsers cheap on hostile input.
const (
	maxInputLen = 4096 // longest specification accepted, in bytes
	maxDepth    = 4    // deepest nesting of @{...} groups
)

// param is one "key" or "key=value" item of a specification.
type param struct {
	key      string // lower-case
	value    string // trimmed
	hasValue bool   // "=" was present
}

// lexed is a specification split into its protocol and parameters.
type lexed struct {
	proto  string // lower-case
	params []param
}

// lex splits "proto:k=v,flag,..." into its parts. It checks structure only:
// a protocol name, balanced braces, non-empty well-formed keys and no
// duplicated key.
func lex(input string) (*lexed, *Error) {
	s := strings.TrimSpace(input)
	const form = "expected protocol:key=value,... such as tcp:port=5005"
	if s == "" {
		return nil, newError(input, "", "", "empty specification", form)
	}
	if len(s) > maxInputLen {
		return nil, newError(input[:64]+"...", "", "", "specification is too long (more than 4096 bytes)", "")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return nil, newError(input, "", "", "specification contains a control character", "remove tabs, newlines and other control characters")
		}
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return nil, newError(input, "", s, "missing protocol", form)
	}
	proto := strings.TrimSpace(s[:colon])
	if !isWord(proto) {
		return nil, newError(input, "", proto, "protocol name must be letters and digits", form)
	}
	items, err := splitTop(input, s[colon+1:])
	if err != nil {
		return nil, err
	}
	l := &lexed{proto: strings.ToLower(proto)}
	seen := make(map[string]bool)
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			return nil, newError(input, "", "", "empty parameter (two commas in a row, or a comma at the start or end)", "remove the extra comma")
		}
		k, v, has := strings.Cut(it, "=")
		k = strings.TrimSpace(k)
		if !isWord(k) {
			shown := k
			if has {
				shown = k + "=..."
			}
			return nil, newError(input, "", shown, "parameter is not of the form key or key=value", "keys are letters and digits, e.g. port=5005 or hidden")
		}
		k = strings.ToLower(k)
		if seen[k] {
			return nil, newError(input, k, "", "key given more than once", "give each key once")
		}
		seen[k] = true
		l.params = append(l.params, param{key: k, value: strings.TrimSpace(v), hasValue: has})
	}
	return l, nil
}

// splitTop splits s at the commas that are outside every brace group.
// An empty (all-space) s gives no items.
func splitTop(input, s string) ([]string, *Error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var items []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
			if depth > maxDepth {
				return nil, newError(input, "", "", "brace groups @{...} nested too deeply", "")
			}
		case '}':
			depth--
			if depth < 0 {
				return nil, newError(input, "", "", "unbalanced braces: a } has no matching {", "check the @{...} groups")
			}
		case ',':
			if depth == 0 {
				items = append(items, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, newError(input, "", "", "unbalanced braces: a { is not closed", "close every @{ with }")
	}
	return append(items, s[start:]), nil
}

// isWord reports whether s is a non-empty run of ASCII letters, digits and
// underscores.
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// group returns the inside of a value of the form @{...} whose first brace is
// closed by its last character.
func group(v string) (string, bool) {
	if len(v) < 3 || v[0] != '@' || v[1] != '{' || v[len(v)-1] != '}' {
		return "", false
	}
	depth := 0
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 && i != len(v)-1 {
				return "", false
			}
		}
	}
	return v[2 : len(v)-1], depth == 0
}
