package kdnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"kdsrv/internal/testkit"
)

// TestReplayedPokeAfterHostRestart is the case a fresh host cannot tell
// by its memory: a poke from the target's previous boot, replayed right
// after the host restarted, while the target's current boot holds the
// session. The live session keeps the target; the replay is counted as
// stale and answered with nothing.
func TestReplayedPokeAfterHostRestart(t *testing.T) {
	t.Parallel()
	withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		addr := host.LocalAddr()

		// Boot 1 of the target, through a proxy that records its pokes.
		px := newProxy(t, addr, testKey(t, "1.2.3.4"), nil)
		old := dialTarget(t, px.addr(), TargetConfig{})
		stop := echoTarget(ctx, old)
		exchange(ctx, t, host, "boot 1")
		stop()
		old.Close()
		oldPoke := px.relayed()[0] // the first datagram of boot 1: its poke

		// kdsrv restarts; boot 2 of the target finds it.
		host2 := restartHost(t, host)
		tgt := dialTarget(t, addr, TargetConfig{})
		defer echoTarget(ctx, tgt)()
		exchange(ctx, t, host2, "boot 2")

		r := socket(t, "127.0.0.1:0")
		stale := host2.NetStats().Stale
		if _, err := r.WriteToUDPAddrPort(oldPoke, addr); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "the replayed poke to be counted", func() bool { return host2.NetStats().Stale > stale })
		// Several of the live target's keep-alive pokes later, the session is
		// still the live target's.
		pokes := host2.NetStats().Pokes
		testkit.WaitFor(t, "keep-alive pokes", func() bool { return host2.NetStats().Pokes >= pokes+3 })
		exchange(ctx, t, host2, "still boot 2")
		wantSessions(t, host2, 1, "the replayed poke")
	})
}

// A replayed poke reaches the host while the live target has been quiet
// for a while (its pokes are an hour apart here): the host asks the
// target to prove it is there, the target pokes at once, and the replay
// is held off again and again.
func TestReplayedPokeProbesQuietTarget(t *testing.T) {
	t.Parallel()
	withHost(t, 20*time.Second, func(t *testing.T, ctx context.Context, host *Link) {
		addr := host.LocalAddr()
		px := newProxy(t, addr, testKey(t, "1.2.3.4"), nil)
		old := dialTarget(t, px.addr(), TargetConfig{PokeInterval: time.Hour})
		testkit.WaitFor(t, "the first session", func() bool { return host.NetStats().Sessions == 1 })
		old.Close()
		oldPoke := px.relayed()[0]

		host2 := restartHost(t, host)
		tgt := dialTarget(t, addr, TargetConfig{PokeInterval: time.Hour})
		defer echoTarget(ctx, tgt)()
		exchange(ctx, t, host2, "boot 2")
		r := socket(t, "127.0.0.1:0")
		for i := range 2 {
			// Quiet for longer than a probe's grace, so the host must ask.
			time.Sleep(probeGrace + 100*time.Millisecond)
			pokes := tgt.NetStats().Pokes
			if _, err := r.WriteToUDPAddrPort(oldPoke, addr); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, fmt.Sprintf("replay %d: the live target to answer the probe", i), func() bool { return tgt.NetStats().Pokes > pokes })
		}
		exchange(ctx, t, host2, "still boot 2")
		wantSessions(t, host2, 1, "the replayed pokes")
	})
}
