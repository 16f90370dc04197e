package discovery

import (
	"encoding/json"
	"strings"
)

// ServerKind is the label the original tool prints before each transport.
const ServerKind = "Remote Kernel Debugger Server"

// Format renders a host's servers as -QR prints them:
//
//	Servers on HOST:
//	Remote Kernel Debugger Server - tcp:Port=53:60
//	Remote Kernel Debugger Server - npipe:Pipe=KernelPipe,Password=*
//
// and, when lines is empty, the single line "No servers found on HOST.".
// host is shown as given (pass the name the user typed, or Result.Host).
// Every line ends with "\n".
func Format(host string, lines []string) string {
	var b strings.Builder
	if len(lines) == 0 {
		b.WriteString("No servers found on " + host + ".\n")
		return b.String()
	}
	b.WriteString("Servers on " + host + ":\n")
	for _, l := range lines {
		b.WriteString(ServerKind + " - " + l + "\n")
	}
	return b.String()
}

// JSONServer is one server transport in FormatJSON's output.
type JSONServer struct {
	Kind      string `json:"kind"`      // always ServerKind
	Transport string `json:"transport"` // display line, e.g. "tcp:Port=53:60"
	Protocol  string `json:"protocol"`  // "tcp", "npipe", "com", "ssl", "spipe"
	Password  bool   `json:"password"`  // a password is required
}

// JSONResult is FormatJSON's output document.
type JSONResult struct {
	Host    string       `json:"host"`
	Servers []JSONServer `json:"servers"` // empty array, never null, when none
}

// FormatJSON renders a host's servers as an indented JSON document (a
// JSONResult) followed by a newline, for scripts.
func FormatJSON(host string, lines []string) ([]byte, error) {
	doc := JSONResult{Host: host, Servers: make([]JSONServer, 0, len(lines))}
	for _, l := range lines {
		proto, _, _ := strings.Cut(l, ":")
		doc.Servers = append(doc.Servers, JSONServer{
			Kind:      ServerKind,
			Transport: l,
			Protocol:  proto,
			Password:  strings.HasSuffix(l, "Password=*"),
		})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
