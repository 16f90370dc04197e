package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSmokeJSON runs every path on a tiny workload without a WAN and
// checks that the JSON has every documented key and no errors. It does not
// look at speed.
func TestSmokeJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and 20 sessions")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errs bytes.Buffer
	code := Main(ctx, []string{"-json", "-q", "-rtt", "0", "-jitter", "0", "-rate", "0", "-loss", "0",
		"-calls", "20", "-dump", "64KiB", "-sessions", "20", "-scale-calls", "3", "-kdsrv", "inproc", "-socat", "off", "-attach-modules", "20"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit code %d\nstderr: %s\nstdout: %s", code, errs.String(), out.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	want := []string{"rtt_ms"}
	for _, p := range []string{"direct", "byte_relay", "kdsrv"} {
		for _, k := range []string{"calls_per_s", "p50_us", "p99_us", "rtts_per_call", "dump_mib_s", "target_retransmits"} {
			want = append(want, p+"."+k)
		}
	}
	for _, p := range []string{"direct", "byte_relay", "kdsrv", "kdsrv_cache"} {
		for _, k := range []string{"radare2.ms", "radare2.calls", "radare2.rtts_per_call", "modules.ms", "modules.calls", "errors"} {
			want = append(want, "attach."+p+"."+k)
		}
	}
	want = append(want, "attach.kdsrv_cache_vs_byte_relay", "attach.modules_cache_vs_byte_relay")
	want = append(want, "kdsrv_readahead.dump_mib_s", "loopback.kdsrv_vs_direct_calls",
		"scale.sessions", "scale.rss_mib", "scale.p99_us", "scale.errors")
	for _, k := range want {
		v, ok := lookup(m, k)
		if !ok {
			t.Errorf("JSON has no %s", k)
			continue
		}
		if _, isNum := v.(float64); !isNum {
			t.Errorf("%s is %T, want a number", k, v)
		}
	}
	for _, k := range []string{"direct.errors", "byte_relay.errors", "kdsrv.errors", "kdsrv_readahead.errors", "loopback.errors", "scale.errors"} {
		if v, _ := lookup(m, k); v != float64(0) {
			t.Errorf("%s = %v (first error: %v)", k, v, m[strings.Split(k, ".")[0]])
		}
	}
	if v, _ := lookup(m, "scale.sessions"); v != float64(20) {
		t.Errorf("scale.sessions = %v, want 20", v)
	}
	for _, k := range []string{"direct.calls", "kdsrv.calls", "byte_relay.calls"} {
		if v, _ := lookup(m, k); v != float64(20) {
			t.Errorf("%s = %v, want all 20 calls made", k, v)
		}
	}
	for _, p := range []string{"direct", "byte_relay", "kdsrv", "kdsrv_cache"} {
		if v, _ := lookup(m, "attach."+p+".errors"); v != float64(0) {
			t.Errorf("attach.%s.errors = %v (%v)", p, v, m["attach"])
		}
		// radare2's 45 calls; the walk of 20 modules: 3 to find the list,
		// 2×(head + 20 entries), 20×3 names and headers, 20 base names, 2.
		if v, _ := lookup(m, "attach."+p+".radare2.calls"); v != float64(45) {
			t.Errorf("attach.%s.radare2.calls = %v, want 45", p, v)
		}
		if v, _ := lookup(m, "attach."+p+".modules.calls"); v != float64(3+2*21+3*20+20+2) {
			t.Errorf("attach.%s.modules.calls = %v, want %d", p, v, 3+2*21+3*20+20+2)
		}
	}
	// Only the caching bridge answers locally, and it does answer.
	if v, _ := lookup(m, "attach.kdsrv.radare2.cache_hits"); v != nil {
		t.Errorf("kdsrv without the cache reports %v cache hits", v)
	}
	if v, _ := lookup(m, "attach.kdsrv_cache.radare2.cache_hits"); v == nil || v.(float64) < 30 {
		t.Errorf("attach.kdsrv_cache.radare2.cache_hits = %v, want most of the 45 calls", v)
	}
	if v, _ := lookup(m, "kdsrv_readahead.dump_bytes"); v != float64(64<<10) {
		t.Errorf("kdsrv_readahead.dump_bytes = %v, want %d", v, 64<<10)
	}
}

func lookup(m map[string]any, key string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(key, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestTableHasEveryPath(t *testing.T) {
	r := &Result{RTTms: 20, Rate: "10mbit", Direct: &PathResult{CallsPerS: 1000}, ByteRelay: &PathResult{CallsPerS: 40, DumpMiBs: 0.1},
		Kdsrv: &PathResult{CallsPerS: 45, DumpMiBs: 0.1}, KdsrvReadAhead: &PathResult{DumpMiBs: 1},
		Loopback: &Loopback{KdsrvVsDirectCalls: 0.5}, Scale: &Scale{Sessions: 1000},
		Attach: &Attach{ModulesWalked: 150, ByteRelay: &AttachPath{Radare2: AttachRun{Ms: 2400, Calls: 45}},
			KdsrvCache: &AttachPath{Radare2: AttachRun{Ms: 600, Calls: 45, CacheHits: 36}}, KdsrvCacheVsByteRelay: 0.25}}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"direct", "byte_relay", "kdsrv_readahead", "10.0x dump", "kdsrv/direct 0.50x", "scale: 1000 sessions", "kdsrv_cache", "0.25x the byte relay's time"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"4MiB", 4 << 20, true}, {"512KiB", 512 << 10, true}, {"64k", 64 << 10, true}, {"1M", 1 << 20, true},
		{"4096", 4096, true}, {"1GiB", 1 << 30, true}, {"0", 0, false}, {"-1", 0, false}, {"lots", 0, false}, {"3GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-only", "nope"}, {"-rate", "10bps"}, {"-dump", "x"}, {"extra"}, {"-loss", "1.5"}, {"-attach-modules", "0"}, {"-attach-modules", "151"}, {"-wan-proxy", "nope"}, {"-wan-proxy", "=127.0.0.1:1"}} {
		var out, errs bytes.Buffer
		if code := Main(context.Background(), args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errs.String())
		}
	}
}

// TestWANProxy runs kdbench -wan-proxy in front of an echo server: bytes
// go through both ways, and cancelling stops it with exit code 0.
func TestWANProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	var errs bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"-wan-proxy", "127.0.0.1:0=" + ln.Addr().String(), "-rtt", "2ms", "-jitter", "0", "-loss", "0"}, pw, &errs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil || !strings.HasPrefix(line, "kdbench: WAN proxy on 127.0.0.1:") {
		t.Fatalf("first line %q, %v (stderr %q)", line, err, errs.String())
	}
	addr := strings.Fields(strings.TrimPrefix(line, "kdbench: WAN proxy on "))[0]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("through the WAN")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("through the WAN"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "through the WAN" {
		t.Fatalf("echo through the proxy: %q %v", got, err)
	}
	c.Close()
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d; stderr %s", c, errs.String())
	}
}
