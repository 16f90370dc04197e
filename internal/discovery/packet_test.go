package discovery

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"net/netip"
)

func TestPacketGolden(t *testing.T) {
	t.Parallel()
	vectors := []struct {
		name string
		b    []byte
	}{
		{"request.hex", encodeRequest(request{Page: 1, ID: 0x0102030405060708})},
		{"answer.hex", encodeAnswer("HOST", 0, 0x0102030405060708, []string{"tcp:Port=53:60", "npipe:Pipe=KernelPipe,Password=*"}, true)},
		{"busy.hex", encodeBusy(0, 0x0102030405060708)},
	}
	for _, v := range vectors {
		golden(t, v.name, []byte(hex.Dump(v.b)))
	}
}

func TestRequestRoundTrip(t *testing.T) {
	t.Parallel()
	in := request{Page: 7, ID: 0xdeadbeefcafef00d}
	out, err := decodeRequest(encodeRequest(in))
	if err != nil || out != in {
		t.Fatalf("round trip = %+v, %v; want %+v", out, err, in)
	}
	bad := map[string][]byte{
		"short":   encodeRequest(in)[:RequestSize-1],
		"magic":   append([]byte("XDQR"), encodeRequest(in)[4:]...),
		"version": func() []byte { b := encodeRequest(in); b[4] = 2; return b }(),
		"type":    func() []byte { b := encodeRequest(in); b[5] = typeAnswer; return b }(),
		"flags":   func() []byte { b := encodeRequest(in); b[6] = 1; return b }(),
		"huge":    make([]byte, MaxDatagramSize+1),
	}
	for name, b := range bad {
		if _, err := decodeRequest(b); err == nil {
			t.Errorf("%s: decodeRequest succeeded", name)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	t.Parallel()
	lines := []string{"tcp:Port=53:60", "com:Port=COM1,Baud=9600,Channel=3"}
	b := encodeAnswer("host", 2, 42, lines, true)
	r, err := decodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := response{Type: typeAnswer, More: true, Page: 2, ID: 42, Host: "host", Lines: lines}
	if d := cmp.Diff(want, r); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	bad := map[string][]byte{
		"trailing":   append(encodeAnswer("h", 0, 1, nil, false), 0),
		"cut":        b[:len(b)-1],
		"flags":      func() []byte { c := append([]byte(nil), b...); c[6] |= 0x80; return c }(),
		"ctl byte":   encodeAnswer("h\n", 0, 1, nil, false),
		"busy+data":  append(encodeBusy(0, 1), 0),
		"query type": encodeRequest(request{}),
	}
	for name, c := range bad {
		if _, err := decodeResponse(c); err == nil {
			t.Errorf("%s: decodeResponse succeeded", name)
		}
	}
}

func TestPageLinesBounded(t *testing.T) {
	t.Parallel()
	host := strings.Repeat("h", maxHostLen)
	var lines []string
	for i := 0; i < 200; i++ {
		lines = append(lines, strings.Repeat(string(rune('a'+i%26)), 1+i%MaxLineLen))
	}
	var got []string
	for p := 0; ; p++ {
		page, more := pageLines(host, lines, p)
		if len(page) == 0 && more {
			t.Fatalf("page %d empty but more follow", p)
		}
		b := encodeAnswer(host, uint8(p), 1, page, more)
		if len(b) > MaxDatagramSize {
			t.Fatalf("page %d is %d bytes, over %d", p, len(b), MaxDatagramSize)
		}
		if len(b) > 3*RequestSize {
			t.Fatalf("page %d is %d bytes: amplification over 3x", p, len(b))
		}
		got = append(got, page...)
		if !more {
			break
		}
		if p > 1000 {
			t.Fatal("pagination does not end")
		}
	}
	if d := cmp.Diff(lines, got); d != "" {
		t.Fatalf("pages do not cover the lines (-want +got):\n%s", d)
	}
	if page, more := pageLines(host, lines, 10000); page != nil || more {
		t.Fatalf("page past the end = %v, %v", page, more)
	}
	if page, more := pageLines("h", nil, 0); len(page) != 0 || more {
		t.Fatalf("empty list page 0 = %v, %v", page, more)
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::2") // same /64 as v6a
	type step struct {
		src      netip.Addr
		at       time.Duration
		ok, busy bool
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refuse then refill", 1, 2, []step{
			{a, 0, true, false}, {a, 0, true, false}, {a, 0, false, true},
			{a, 100 * time.Millisecond, false, false}, // busy notice at most once a second
			{b, 0, true, false},                       // other sources unaffected
			{a, 1100 * time.Millisecond, true, false}, // refilled
		}},
		{"ipv6 per /64", 0.001, 1, []step{{v6a, 0, true, false}, {v6b, 0, false, true}}},
		{"ipv4-mapped", 0.001, 1, []step{{a, 0, true, false}, {netip.AddrFrom16(a.As16()), 0, false, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.rate, tc.burst, 1000, 1000)
			for i, s := range tc.steps {
				ok, busy := l.allow(s.src, t0.Add(s.at))
				if ok != s.ok || busy != s.busy {
					t.Fatalf("step %d (%v at %v): allow = %v, %v; want %v, %v", i, s.src, s.at, ok, busy, s.ok, s.busy)
				}
			}
		})
	}
}

func TestLimiterGlobalAndBounded(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	l := newLimiter(1, 5, 1, 3)
	allowed := 0
	for i := 0; i < maxLimiterSources+100; i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(src, t0); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("global limit let %d through, want 3", allowed)
	}
	if len(l.sources) > maxLimiterSources {
		t.Errorf("limiter keeps %d sources, bound is %d", len(l.sources), maxLimiterSources)
	}
}

func TestDefaultAddrMatchesPort(t *testing.T) {
	t.Parallel()
	if DefaultAddr != ":"+strconv.Itoa(DefaultPort) {
		t.Fatalf("DefaultAddr %q does not use DefaultPort %d", DefaultAddr, DefaultPort)
	}
}
