package e2e

import (
	"bytes"
	"testing"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

// TestHaltCacheSession: a full debugger session through a bridge with the
// halted-target cache gives exactly the answers the target gives — after
// writes, a register change, a continue and a second break-in — while the
// reads it repeats are answered by the bridge.
func TestHaltCacheSession(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	trans, tgt := h.addTarget("vm1", sim.Config{Processors: 2})
	s, err := h.open(h.serverSpec(""), trans, client.Options{}, client.SessionOptions{Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	dh := s.host(t, kd.HostOptions{})
	ctx := ctxFor(t, 60*time.Second)
	if _, err := dh.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	checkRead := func(what string, addr uint64, n int) []byte {
		t.Helper()
		got, err := dh.ReadVirtual(ctx, addr, n)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want := make([]byte, n)
		tgt.Memory().Read(addr, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: read %#x+%d through the cache differs from the target's memory", what, addr, n)
		}
		return got
	}
	checkContext := func(what string, cpu uint16) kd.ContextX64 {
		t.Helper()
		c, err := dh.Context(ctx, cpu)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if want := tgt.Context(int(cpu)); c != want {
			t.Fatalf("%s: context of cpu %d through the cache differs from the target's", what, cpu)
		}
		return c
	}
	v1, err := dh.Version(ctx)
	if err != nil || v1.KernBase != tgt.Layout().KernBase {
		t.Fatalf("version: %+v %v", v1, err)
	}
	// What an attach does: the same reads, again and again.
	base := tgt.Layout().KernBase
	for range 5 {
		if v, err := dh.Version(ctx); err != nil || v != v1 {
			t.Fatalf("repeated version: %+v %v", v, err)
		}
		checkContext("attach", 0)
		checkRead("header", base, 256)
		checkRead("inside the header", base+16, 64)
	}
	hits := s.Bridge.CacheStats().Hits
	if hits < 10 {
		t.Fatalf("only %d requests were answered from the cache during the attach", hits)
	}
	// Write and read back, through the cache.
	addr := sim.DataBase + 0x100
	checkRead("before the write", addr, 32)
	if _, err := dh.WriteVirtual(ctx, addr, []byte("written through the bridge")); err != nil {
		t.Fatal(err)
	}
	if got := checkRead("after the write", addr, 32); !bytes.HasPrefix(got, []byte("written through")) {
		t.Fatalf("read-back %q", got)
	}
	// A register change.
	c := checkContext("before SetContext", 1)
	c.Rip += 0x10
	if err := dh.SetContext(ctx, 1, &c); err != nil {
		t.Fatal(err)
	}
	if got := checkContext("after SetContext", 1); got.Rip != c.Rip {
		t.Fatalf("Rip %#x after setting %#x", got.Rip, c.Rip)
	}
	// Continue, let the kernel change memory while it runs, break in again.
	if err := dh.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	tgt.Memory().Write(addr, []byte("changed by the kernel"))
	if _, err := dh.Break(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checkRead("after the second break-in", addr, 32); !bytes.HasPrefix(got, []byte("changed by the kernel")) {
		t.Fatalf("stale memory after a continue: %q", got)
	}
	checkContext("after the second break-in", 0)
	if s.Bridge.CacheStats().Hits == hits {
		t.Log("(no further hits after the attach)")
	}
}
