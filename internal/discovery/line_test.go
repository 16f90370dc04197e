package discovery

import "testing"

func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proto    string
		fields   []KV
		password bool
		want     string
	}{
		{"tcp", []KV{{"port", PortField(53, 60)}}, false, "tcp:Port=53:60"},
		{"TCP", []KV{{"PORT", PortField(5000, 0)}}, true, "tcp:Port=5000,Password=*"},
		{"npipe", []KV{{"pipe", "KernelPipe"}}, true, "npipe:Pipe=KernelPipe,Password=*"},
		{"com", []KV{{"port", "COM2"}, {"baud", "115200"}, {"channel", "0"}}, false, "com:Port=COM2,Baud=115200,Channel=0"},
		{"ssl", []KV{{"proto", "tls1"}, {"port", "5001"}}, false, "ssl:Proto=tls1,Port=5001"},
		{"spipe", []KV{{"proto", "tls1"}, {"pipe", "P"}, {"", "skipped"}}, true, "spipe:Proto=tls1,Pipe=P,Password=*"},
		{"tcp", nil, true, "tcp:Password=*"},
	}
	for _, tc := range tests {
		if got := Line(tc.proto, tc.fields, tc.password); got != tc.want {
			t.Errorf("Line(%q, %v, %v) = %q, want %q", tc.proto, tc.fields, tc.password, got, tc.want)
		}
	}
}

func TestPortField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		used, end int
		want      string
	}{
		{53, 60, "53:60"}, {60, 60, "60"}, {5000, 0, "5000"},
	}
	for _, tc := range tests {
		if got := PortField(tc.used, tc.end); got != tc.want {
			t.Errorf("PortField(%d, %d) = %q, want %q", tc.used, tc.end, got, tc.want)
		}
	}
}

func TestDiscoverable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		elevated, hidden, reverse bool
		want                      bool
		reason                    string
	}{
		{true, false, false, true, "discoverable by -QR"},
		{false, false, false, false, "not discoverable by -QR: " + notElevatedReason},
		{true, true, false, false, "not discoverable by -QR: the transport is marked hidden"},
		{true, false, true, false, "not discoverable by -QR: reverse-connection (clicon) servers are never listed"},
		{false, true, true, false, "not discoverable by -QR: reverse-connection (clicon) servers are never listed"},
	}
	for _, tc := range tests {
		ok, reason := Discoverable(tc.elevated, tc.hidden, tc.reverse)
		if ok != tc.want || reason != tc.reason {
			t.Errorf("Discoverable(%v,%v,%v) = %v, %q; want %v, %q", tc.elevated, tc.hidden, tc.reverse, ok, reason, tc.want, tc.reason)
		}
	}
}
