package kdsrvcli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestLimitFlagsValidated: the abuse-limit flags refuse values that mean
// nothing, with a message naming the flag.
func TestLimitFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		frag string
	}{
		{[]string{"-auth-backoff-max", "0s"}, "-auth-backoff-max"},
		{[]string{"-auth-free-failures", "0"}, "-auth-free-failures"},
		{[]string{"-max-preauth-per-source", "0"}, "-max-preauth-per-source"},
		{[]string{"-auth-failures-per-second", "0"}, "-auth-failures-per-second"},
		{[]string{"-max-preauth", "x"}, "-max-preauth"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"-t", "tcp:port=5005"}, tc.args...)
		if code := Main(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.frag) {
			t.Errorf("kdsrv %v: exit %d, stderr %q; want 2 naming %s", args, code, stderr.String(), tc.frag)
		}
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-t", "tcp:port=5005", "-takeover-any", "-max-preauth", "-1", "-auth-free-failures", "8", "-dry-run"}
	if code := Main(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Errorf("kdsrv %v: exit %d, stderr %q", args, code, stderr.String())
	}
}
