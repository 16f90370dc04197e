package testkit

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Unhex decodes hex text written for people (test vectors, captures),
// ignoring white space; bad hex fails the test.
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test data: %v", err)
	}
	return b
}
