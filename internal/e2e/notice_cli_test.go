package e2e

import (
	"strings"
	"testing"
)

// kdclient prints the server's notices on standard error and goes on: here
// the one a client gets when it asks for a target link that is already
// open with other options.
func TestKdclientPrintsSharedLinkNotice(t *testing.T) {
	st := startStack(t, nil, nil)
	stdout, stderr, code := runClient(t, nil, st.kdclient, "-k", st.k, "version")
	if code != 0 || !strings.Contains(stdout, "KernBase") {
		t.Fatalf("first kdclient version: exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "shared") {
		t.Fatalf("the first client was told of differences: %s", stderr)
	}
	i := strings.LastIndex(st.k, "}") // the end of trans=@{...}
	other := st.k[:i] + ",resets=0" + st.k[i:]
	stdout, stderr, code = runClient(t, nil, st.kdclient, "-k", other, "version")
	if code != 0 || !strings.Contains(stdout, "KernBase") {
		t.Fatalf("second kdclient version: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "kdsrv: target") || !strings.Contains(stderr, "(you asked for resets=0)") {
		t.Fatalf("kdclient did not print the shared-link notice; stderr:\n%s", stderr)
	}
}
