package logx

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func lines(b *bytes.Buffer) []string {
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}
func count(b *bytes.Buffer, s string) int { return strings.Count(b.String(), s) }
func limited(w io.Writer, c *fakeClock) *slog.Logger {
	return New(w, Options{Format: FormatJSON, Limit: LimitConfig{Burst: 3, Every: time.Second, Now: c.now}})
}

// TestLimitBurstThenRate: a flood of one message gets Burst lines at
// once, then one per Every; the line after a gap says how many were
// dropped; other messages have their own budget; errors are never dropped.
func TestLimitBurstThenRate(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	l := limited(&buf, c)
	for range 100 {
		l.Warn("accept failed", "err", "too many open files")
	}
	if n := count(&buf, `"msg":"accept failed"`); n != 3 {
		t.Fatalf("%d lines of a flood of 100 at once, want the burst of 3:\n%s", n, buf.String())
	}
	l.Info("client connected")
	l.Error("fatal", "n", 1)
	l.Error("fatal", "n", 2)
	l.Error("fatal", "n", 3)
	l.Error("fatal", "n", 4)
	if count(&buf, `"msg":"client connected"`) != 1 || count(&buf, `"msg":"fatal"`) != 4 {
		t.Fatalf("another message or an error was limited:\n%s", buf.String())
	}
	buf.Reset()
	c.add(time.Second)
	for range 50 {
		l.Warn("accept failed")
	}
	ls := lines(&buf)
	if len(ls) != 1 {
		t.Fatalf("after 1s: %d lines, want 1:\n%s", len(ls), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(ls[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["suppressed"] != float64(97) {
		t.Errorf("suppressed = %v, want 97 (100-3 dropped before the refill)", rec["suppressed"])
	}
	// A long quiet period refills the bucket only up to the burst.
	buf.Reset()
	c.add(time.Hour)
	for range 10 {
		l.Warn("accept failed")
	}
	if n := count(&buf, `"msg":"accept failed"`); n != 3 {
		t.Errorf("after an hour: %d lines, want the burst of 3", n)
	}
}

// TestLimitDebugUntouched: debug lines (asked for with -v) are not limited.
func TestLimitDebugUntouched(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	l := New(&buf, Options{Level: slog.LevelDebug, Limit: LimitConfig{Burst: 1, Now: c.now}})
	for range 10 {
		l.Debug("packet")
	}
	if n := count(&buf, "msg=packet"); n != 10 {
		t.Errorf("%d debug lines of 10", n)
	}
}

// TestLimitSharedAcrossWith: loggers derived with With share the budget
// of their parent (a per-client logger cannot escape the limit).
func TestLimitSharedAcrossWith(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	l := limited(&buf, c)
	for i := range 10 {
		l.With("client", i).WithGroup("g").Info("client refused")
	}
	if n := count(&buf, `"msg":"client refused"`); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

// TestJSONLines: every line is one JSON object with time, level and msg.
func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Format: FormatJSON})
	l.Info("client connected", "from", "127.0.0.1:4000", "transport", "tcp:port=5005")
	l.Warn("accept failed", Err(errors.New("emfile")))
	for _, line := range lines(&buf) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%q has no %q", line, k)
			}
		}
	}
}

// TestRedact: attributes named like secrets are never written.
func TestRedact(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{})
	l.Info("x", "password", "Sekr1t", "Key", "1.2.3.4", "user", "bob")
	if strings.Contains(buf.String(), "Sekr1t") || strings.Contains(buf.String(), "1.2.3.4") || !strings.Contains(buf.String(), "user=bob") {
		t.Errorf("line %q", buf.String())
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		level   slog.Level
		format  string
		wantErr string
	}{
		{nil, slog.LevelInfo, FormatText, ""},
		{[]string{"-v"}, slog.LevelDebug, FormatText, ""},
		{[]string{"-log-level", "WARN", "-log-format", "json"}, slog.LevelWarn, FormatJSON, ""},
		{[]string{"-log-level", "warning"}, slog.LevelWarn, FormatText, ""},
		{[]string{"-log-level", "error"}, slog.LevelError, FormatText, ""},
		{[]string{"-v", "-log-level", "debug"}, slog.LevelDebug, FormatText, ""},
		{[]string{"-v", "-log-level", "error"}, 0, "", "contradicts"},
		{[]string{"-log-level", "loud"}, 0, "", `-log-level "loud": give debug, info, warn or error`},
		{[]string{"-log-format", "xml"}, 0, "", `-log-format "xml": give text or json`},
	} {
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		o, err := f.Options()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || o.Level != tc.level || o.Format != tc.format {
			t.Errorf("%q: %+v %v", tc.args, o, err)
		}
	}
}
