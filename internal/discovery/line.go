package discovery

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KV is one key=value field of a transport's display line, in the order it
// is shown. Keys are capitalised by Line; values are shown as given.
type KV struct {
	Key   string
	Value string
}

// Line formats one transport in the original tool's display form, as
// printed after "Remote Kernel Debugger Server - ":
//
//	tcp:Port=53:60
//	npipe:Pipe=KernelPipe,Password=*
//	com:Port=COM2,Baud=115200,Channel=0
//	ssl:Proto=tls1,Port=5000
//	spipe:Proto=tls1,Pipe=KernelPipe
//
// proto is the protocol name (shown in lower case); fields are shown in the
// given order with their key capitalised (first letter upper case, the rest
// lower case); ",Password=*" is appended when password is true. The
// password itself is never an input. Fields with an empty key are skipped.
// Use PortField for a tcp/ssl port that came from a range.
func Line(proto string, fields []KV, password bool) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(strings.TrimSpace(proto)))
	b.WriteByte(':')
	n := 0
	for _, f := range fields {
		k := strings.TrimSpace(f.Key)
		if k == "" {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(capitalise(k))
		b.WriteByte('=')
		b.WriteString(f.Value)
		n++
	}
	if password {
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString("Password=*")
	}
	return b.String()
}

// PortField returns the value shown for a tcp or ssl port: the port actually
// used, followed by ":" and the end of the configured range when the server
// was started with a range (rangeEnd > used). For "port=51:60" with port 53
// in use it returns "53:60"; with rangeEnd 0 (no range) it returns "53".
func PortField(used, rangeEnd int) string {
	s := strconv.Itoa(used)
	if rangeEnd > used {
		s += ":" + strconv.Itoa(rangeEnd)
	}
	return s
}

func capitalise(k string) string {
	k = strings.ToLower(k)
	r, size := utf8.DecodeRuneInString(k)
	return string(unicode.ToUpper(r)) + k[size:]
}
