package discovery

import "testing"

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "1234 (we ir) d) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615"
	start, state, err := parseStat([]byte(line))
	if err != nil || start != "987654" || state != 'S' {
		t.Fatalf("parseStat = %q, %q, %v; want 987654, S", start, state, err)
	}
	for _, bad := range []string{"", "1234 (x S 1", "1234 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 zz 1"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}
