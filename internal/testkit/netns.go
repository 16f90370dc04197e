package testkit

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// MulticastNetns creates a private network namespace whose only interface
// is a loopback with multicast on (the route for 224.0.0.0/4 goes to it),
// so that a test's multicast reaches no real network. It returns the
// command prefix that runs a program inside it (ip netns exec NAME). The
// namespace is deleted when the test ends. The test is skipped where it
// cannot be created (not Linux, not root, no ip(8)).
func MulticastNetns(t testing.TB, prefix string) (nsExec []string) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to create a network namespace")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip(8) not installed")
	}
	ns := prefix + strconv.Itoa(os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ip := func(args ...string) error {
		out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
		if err != nil {
			t.Logf("ip %v: %v: %s", args, err, out)
		}
		return err
	}
	if ip("netns", "add", ns) != nil {
		t.Skip("cannot create a network namespace here")
	}
	t.Cleanup(func() { _ = exec.Command(ipPath, "netns", "del", ns).Run() })
	if ip("-n", ns, "link", "set", "lo", "up", "multicast", "on") != nil ||
		ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo") != nil {
		t.Fatal("cannot set up the namespace's loopback for multicast")
	}
	return []string{ipPath, "netns", "exec", ns}
}
