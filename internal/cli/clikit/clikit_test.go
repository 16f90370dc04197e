package clikit

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		json, inter  bool
		rest         []string
		n            int // -n after parsing
		code         int
		ok           bool
		stderrHas    string // "" = stderr empty
		stderrIsJSON bool
	}{
		{name: "flags and words", args: []string{"-n", "3", "a", "b"}, rest: []string{"a", "b"}, n: 3, ok: true},
		{name: "words stop the flags", args: []string{"a", "-n", "3"}, rest: []string{"a", "-n", "3"}, ok: true},
		{name: "interspersed", args: []string{"a", "-n", "3", "b"}, inter: true, rest: []string{"a", "b"}, n: 3, ok: true},
		{name: "help", args: []string{"-h"}, code: 0, stderrHas: "Usage of prog"},
		{name: "help with json", args: []string{"-h"}, json: true, code: 0, stderrHas: "Usage of prog"},
		{name: "bad flag", args: []string{"-x"}, code: 2, stderrHas: "flag provided but not defined: -x"},
		{name: "bad flag with json", args: []string{"-x"}, json: true, code: 2, stderrHas: "prog -h shows the usage", stderrIsJSON: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			n := 0
			rest, code, ok := ParseFlags("prog", tc.args, tc.json, tc.inter, &stderr, func(errOut io.Writer) *flag.FlagSet {
				fs := flag.NewFlagSet("prog", flag.ContinueOnError)
				fs.SetOutput(errOut)
				fs.IntVar(&n, "n", 0, "a number")
				return fs
			})
			if ok != tc.ok || code != tc.code || !slices.Equal(rest, tc.rest) {
				t.Fatalf("ParseFlags = %q, %d, %v; want %q, %d, %v", rest, code, ok, tc.rest, tc.code, tc.ok)
			}
			if n != tc.n {
				t.Errorf("-n = %d, want %d", n, tc.n)
			}
			out := stderr.String()
			if tc.stderrHas == "" && out != "" || !strings.Contains(out, tc.stderrHas) {
				t.Errorf("stderr %q, want it to contain %q", out, tc.stderrHas)
			}
			if tc.stderrIsJSON {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Errorf("stderr %q is not one JSON object: %v", out, err)
				}
				if strings.Contains(out, "Usage of") {
					t.Errorf("the usage text was written with the JSON error: %q", out)
				}
			}
		})
	}
}

func TestTraceFlags(t *testing.T) {
	var f TraceFlags
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"-trace-format", "xml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CheckFormat(); err == nil || !strings.HasPrefix(err.Error(), "-trace-format: ") {
		t.Errorf("CheckFormat of xml = %v, want a -trace-format error", err)
	}
	if _, _, err := f.Open(io.Discard); err == nil {
		t.Error("Open accepted -trace-format xml")
	}
	f.Format = "json"
	tr, closeFn, err := f.Open(io.Discard)
	if err != nil || tr != nil || closeFn() != nil {
		t.Errorf("Open without -trace = %v, %v; want no tracer and no error", tr, err)
	}
	f.File = "-"
	var stderr bytes.Buffer
	tr, closeFn, err = f.Open(&stderr)
	if err != nil || tr == nil {
		t.Fatalf("Open of -trace - = %v, %v; want a tracer", tr, err)
	}
	if err := closeFn(); err != nil {
		t.Error(err)
	}
}

func TestReporter(t *testing.T) {
	var text, js bytes.Buffer
	if code := (Reporter{Stderr: &text, Program: "prog"}).Usage("bad %s", "thing"); code != 2 {
		t.Errorf("Usage returned %d, want 2", code)
	}
	if got := text.String(); !strings.HasPrefix(got, "prog: bad thing") || !strings.Contains(got, "prog -h shows the usage") {
		t.Errorf("Usage wrote %q", got)
	}
	if code := (Reporter{Stderr: &js, JSON: true, Program: "prog"}).Fail("broke: %v", 42); code != 1 {
		t.Errorf("Fail returned %d, want 1", code)
	}
	var v map[string]any
	if err := json.Unmarshal(js.Bytes(), &v); err != nil || !strings.Contains(js.String(), "broke: 42") {
		t.Errorf("Fail with JSON wrote %q (%v), want one JSON object with the message", js.String(), err)
	}
}
