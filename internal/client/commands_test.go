package client

import (
	"strings"
	"testing"
	"time"
)

// parseCase is a row of a parser's table: the input, and the value or
// the failure it gives.
type parseCase[T comparable] struct {
	in   string
	want T
	ok   bool
}

// checkParse runs parse over cases; a failure's message must contain
// errSays ("" = anything).
func checkParse[T comparable](t *testing.T, name string, parse func(string) (T, error), errSays string, cases []parseCase[T]) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s(%q) = %#v, %v", name, tc.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), errSays) {
			t.Errorf("%s(%q) error %q does not say %q", name, tc.in, err, errSays)
		}
	}
}

func TestParseAddress(t *testing.T) {
	// A failure says how to write an address.
	checkParse(t, "ParseAddress", ParseAddress, "hexadecimal", []parseCase[uint64]{
		{"fffff802`6bc18000", 0xfffff8026bc18000, true},
		{"0xFFFFF8026BC18000", 0xfffff8026bc18000, true},
		{"1000", 0x1000, true},
		{" 10 ", 0x10, true},
		{"", 0, false},
		{"0x", 0, false},
		{"zz", 0, false},
		{"1fffff8026bc180000", 0, false}, // 65 bits
	})
}

func TestParseLength(t *testing.T) {
	parse := func(s string) (int, error) { return ParseLength(s, 1<<20) }
	checkParse(t, "ParseLength", parse, "", []parseCase[int]{
		{"16", 16, true},
		{"0x10", 16, true},
		{"1048576", 1 << 20, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"abc", 0, false},
		{"1048577", 0, false}, // over the limit given
	})
}

func TestHexDump(t *testing.T) {
	data := []byte("MZ\x90\x00abcdefghijklmnopqrstu")
	got := HexDump(0xfffff80262a00000, data)
	want := "fffff802`62a00000  4d 5a 90 00 61 62 63 64-65 66 67 68 69 6a 6b 6c  MZ..abcdefghijkl\n" +
		"fffff802`62a00010  6d 6e 6f 70 71 72 73 74-75                       mnopqrstu\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestProgressBar(t *testing.T) {
	got := progressBar(512, 1024, time.Second)
	if !strings.HasPrefix(got, "[###############...............]  50% 512/1024 bytes") {
		t.Fatalf("progress %q", got)
	}
}
