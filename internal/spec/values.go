package spec

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// PortRange is a port or a range A:B; Lo == Hi for a single port.
type PortRange struct{ Lo, Hi uint16 }

// String returns "5005" for a single port and "51:60" for a range.
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + ":" + strconv.Itoa(int(r.Hi))
}

// IsRange reports whether r covers more than one port.
func (r PortRange) IsRange() bool { return r.Hi != r.Lo }

// IsZero reports whether no port is set.
func (r PortRange) IsZero() bool { return r.Lo == 0 && r.Hi == 0 }

// valueError is a validation failure of one value, completed with the input
// and key by the caller.
type valueError struct{ msg, hint string }

func (v *valueError) at(input, key, value string) *Error {
	return newError(input, key, value, v.msg, v.hint)
}

// parseDecimal parses a non-empty run of ASCII digits (no sign, no spaces)
// that fits in max.
func parseDecimal(s string, max int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// parsePort parses one TCP/UDP port number 1..65535.
func parsePort(s string) (uint16, *valueError) {
	if s == "" {
		return 0, &valueError{"needs a value", "give a port number from 1 to 65535"}
	}
	n, ok := parseDecimal(s, 1<<31-1)
	if !ok {
		return 0, &valueError{"not a port number", "give a decimal port number from 1 to 65535"}
	}
	if n < 1 || n > 65535 {
		return 0, &valueError{"port outside 1-65535", "give a port number from 1 to 65535"}
	}
	return uint16(n), nil
}

// parsePortRange parses "N" or "A:B" with A <= B.
func parsePortRange(s string) (PortRange, *valueError) {
	lo, hi, isRange := strings.Cut(s, ":")
	if isRange && (strings.TrimSpace(lo) == "" || strings.TrimSpace(hi) == "") {
		return PortRange{}, &valueError{"port range must be A:B with both ports given", "e.g. port=51:60"}
	}
	a, err := parsePort(strings.TrimSpace(lo))
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(strings.TrimSpace(hi))
	if err != nil {
		return PortRange{}, err
	}
	if a > b {
		return PortRange{}, &valueError{"port range A:B has A greater than B", "write the lower port first, e.g. port=51:60"}
	}
	return PortRange{a, b}, nil
}

// parseBaud parses a positive baud rate.
func parseBaud(s string) (int, *valueError) {
	n, ok := parseDecimal(s, 1<<31-1)
	if !ok || n == 0 {
		return 0, &valueError{"baud rate must be a positive integer", "e.g. baud=115200"}
	}
	return n, nil
}

// checkPassword accepts 1 to 12 ASCII letters and digits. Its messages never
// contain the password.
// CheckPassword checks a password that comes from elsewhere than password=
// (a file, the environment, a terminal) against the same rules: 1 to 12
// letters or digits, as the original kdsrv and its clients accept. The
// error never contains the password.
func CheckPassword(s string) error {
	if v := checkPassword(s); v != nil {
		return errors.New(v.msg + "; " + v.hint)
	}
	return nil
}

func checkPassword(s string) *valueError {
	if s == "*" {
		return &valueError{"the password is shown as * by -QR discovery", "replace * with the real password"}
	}
	if s == "" {
		return &valueError{"needs a value", "give 1 to 12 letters or digits, or leave password= out"}
	}
	if len(s) > 12 {
		return &valueError{"password is longer than 12 characters", "use at most 12 letters or digits"}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return &valueError{"password must be alphanumeric (letters A-Z, a-z and digits 0-9 only)", "remove punctuation, spaces and non-ASCII letters"}
		}
	}
	return nil
}

// checkPipeName validates a pipe name. On the server it may hold up to two
// %d/%x codes; on the client none (the client names the expanded pipe).
func checkPipeName(s string, server bool) *valueError {
	if s == "" {
		return &valueError{"pipe name is empty", "give a name such as pipe=KernelPipe"}
	}
	if len(s) > 200 {
		return &valueError{"pipe name is longer than 200 characters", "use a shorter name"}
	}
	if strings.ContainsAny(s, " \t") {
		return &valueError{"pipe name contains a space", "pipe names must not contain spaces"}
	}
	if strings.ContainsAny(s, `"'`) {
		return &valueError{"pipe name contains a quotation mark", "pipe names must not contain quotes"}
	}
	if strings.ContainsAny(s, `/\`) {
		return &valueError{"pipe name contains a path separator (/ or \\)", `give the bare name (KernelPipe), not a path such as \\.\pipe\KernelPipe`}
	}
	if strings.Contains(s, "..") {
		return &valueError{"pipe name contains ..", "remove the .."}
	}
	if strings.ContainsAny(s, "{}") {
		return &valueError{"pipe name contains a brace", "pipe names must not contain { or }"}
	}
	codes := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 >= len(s) || (s[i+1] != 'd' && s[i+1] != 'x') {
			return &valueError{"pipe name has a % that is not %d or %x", "only %d and %x (process id, thread id) are allowed"}
		}
		if !server {
			return &valueError{"pipe name has a %d/%x code, which only the server expands", "give the expanded name shown by -QR discovery"}
		}
		codes++
		i++
	}
	if codes > 2 {
		return &valueError{"pipe name has more than two %d/%x codes", "the first is replaced by the process id and the second by the thread id; remove the others"}
	}
	return nil
}

// normalizeHost strips an optional leading \\ and IPv6 brackets, and checks
// that what remains is an IP address or a host name.
func normalizeHost(s string) (string, *valueError) {
	h := strings.TrimPrefix(s, `\\`)
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return "", &valueError{"host name is empty", `give a host name or IP address, e.g. \\debughost or 192.0.2.7`}
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return h, nil
	}
	if len(h) > 253 {
		return "", &valueError{"host name is longer than 253 characters", ""}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", &valueError{"not a host name or IP address", `a host name has letters, digits, '-', '.' and '_' only (a leading \\ is optional)`}
		}
	}
	return h, nil
}

// comNumber returns n for "COMn", "comn", "n" and `\\.\COMn` with n in 1..256.
func comNumber(s string) (int, bool) {
	t := s
	if len(t) >= 4 && t[:4] == `\\.\` {
		t = t[4:]
	}
	if len(t) >= 3 && strings.EqualFold(t[:3], "com") {
		t = t[3:]
	}
	n, ok := parseDecimal(t, 256)
	return n, ok && n >= 1
}

// normalizeCOM turns a COM port spec into "COMn" or returns a device path as
// given. Accepted: COM2, com2, 2, \\.\COM2, /dev/ttyUSB0, \\.\Name.
func normalizeCOM(s string) (string, *valueError) {
	if s == "" {
		return "", &valueError{"needs a value", "give COMn, n, or a device path such as /dev/ttyUSB0"}
	}
	if n, ok := comNumber(s); ok {
		return "COM" + strconv.Itoa(n), nil
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\\.\`) && len(s) > 4 {
		if strings.ContainsAny(s, "\"'{}") {
			return "", &valueError{"device path contains a quote or a brace", ""}
		}
		return s, nil
	}
	return "", &valueError{"not a COM port", "give COMn (1-256), n, or a device path such as /dev/ttyUSB0"}
}

// checkPath validates a file or socket path value: non-empty, no quotes, no
// braces (the characters our grammar or the shell would mangle).
func checkPath(s string) *valueError {
	return checkUnquoted(s, "path", "give a path", "remove quotes; the value runs to the next comma")
}

// checkCert validates a certificate name or thumbprint given to certuser= or
// machuser=. Spaces are allowed (subject names and snap-in thumbprints have
// them).
func checkCert(s string) *valueError {
	return checkUnquoted(s, "certificate name", "give the certificate's subject name or its thumbprint", "remove the quotes")
}

// checkUnquoted refuses an empty value (hint: emptyHint) and one with a
// quote or a brace (hint: quoteHint); what names the value.
func checkUnquoted(s, what, emptyHint, quoteHint string) *valueError {
	if s == "" {
		return &valueError{"needs a value", emptyHint}
	}
	if strings.ContainsAny(s, "\"'{}") {
		return &valueError{what + " contains a quote or a brace", quoteHint}
	}
	return nil
}

// normalizeThumbprint removes spaces, colons and the invisible marks that
// copying from the certificate snap-in adds, checks for 40 hex digits (a
// SHA-1 thumbprint) and returns them in upper case.
func normalizeThumbprint(s string) (string, *valueError) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == ':' || r == '\u200e' || r == '\u200f' || r == '\ufeff':
		case r >= '0' && r <= '9' || r >= 'A' && r <= 'F':
			b.WriteRune(r)
		case r >= 'a' && r <= 'f':
			b.WriteRune(r - 'a' + 'A')
		default:
			return "", &valueError{"thumbprint must be hexadecimal", "give the 40 hex digits of the SHA-1 thumbprint (spaces allowed)"}
		}
	}
	if b.Len() != 40 {
		return "", &valueError{"thumbprint must have 40 hex digits (SHA-1)", "copy the whole thumbprint from the certificate"}
	}
	return b.String(), nil
}

// checkKDNETKey validates a KDNET key a.b.c.d: four base-36 parts of 1 to 13
// characters [0-9a-z], each below 2^64. It returns the key in lower case.
// Its messages never contain the key.
func checkKDNETKey(s string) (string, *valueError) {
	if s == "" {
		return "", &valueError{"needs a value", "give the key printed by bcdedit /dbgsettings, such as key=1.2.3.4"}
	}
	k := strings.ToLower(s)
	parts := strings.Split(k, ".")
	if len(parts) != 4 {
		return "", &valueError{"KDNET key must have four parts separated by dots (a.b.c.d)", "copy the key from bcdedit /dbgsettings on the target"}
	}
	for _, p := range parts {
		if p == "" || len(p) > 13 {
			return "", &valueError{"each part of a KDNET key has 1 to 13 characters", "copy the key from bcdedit /dbgsettings on the target"}
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
				return "", &valueError{"KDNET key parts are base-36 (digits 0-9 and letters a-z)", "copy the key from bcdedit /dbgsettings on the target"}
			}
		}
		if _, err := strconv.ParseUint(p, 36, 64); err != nil {
			return "", &valueError{"a KDNET key part is 2^64 or more", "copy the key from bcdedit /dbgsettings on the target"}
		}
	}
	return k, nil
}

// checkIP validates an IP address (no host names).
func checkIP(s string) (string, *valueError) {
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return "", &valueError{"not an IP address", "give the target's IP address, e.g. target=192.0.2.9"}
	}
	return a.String(), nil
}
