package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

// dumpOffset is where in the target's pattern region the dump starts (not
// page-aligned on purpose: chunks straddle pages).
const dumpOffset = 0x10000 + 0x123

// dumpPiece is how much one ReadVirtual of the dump asks kd.Host for; the
// host splits it into maximal 3944-byte packets.
const dumpPiece = 64 << 10

// breakIns is how many break-in latencies are measured (the median is
// reported).
const breakIns = 3

// workload is what a path is asked to do once attached.
type workload struct {
	calls   int           // small calls: GetContext and 16-byte ReadVirtual, alternating
	dump    int           // bytes to dump
	breakIn bool          // measure break-in latency
	budget  time.Duration // bound of each phase
	rtt     time.Duration // the WAN round trip, for rtts_per_call
}

func (w workload) run(ctx context.Context, s *session, res *PathResult, errs *errorList) {
	if w.calls > 0 {
		lat, elapsed, err := smallCalls(ctx, s.host, w.calls, w.budget)
		errs.add(err)
		res.Calls = len(lat)
		if elapsed > 0 {
			res.CallsPerS = float64(len(lat)) / elapsed.Seconds()
		}
		res.P50us, res.P99us = micros(percentile(lat, 0.50)), micros(percentile(lat, 0.99))
		if w.rtt > 0 {
			res.RTTsPerCall = float64(percentile(lat, 0.50)) / float64(w.rtt)
		}
	}
	if w.dump > 0 && ctx.Err() == nil {
		n, elapsed, err := dump(ctx, s.host, w.dump, w.budget)
		errs.add(err)
		res.DumpBytes = n
		if elapsed > 0 {
			res.DumpMiBs = float64(n) / (1 << 20) / elapsed.Seconds()
		}
	}
	if w.breakIn && ctx.Err() == nil {
		var lat []time.Duration
		for range breakIns {
			d, err := breakInOnce(ctx, s.host)
			if err != nil {
				errs.add(err)
				break
			}
			lat = append(lat, d)
		}
		res.BreakInMs = ms(percentile(lat, 0.5))
	}
}

// smallCalls makes n calls (or as many as fit in budget) and returns each
// latency and the total time.
func smallCalls(ctx context.Context, h *kd.Host, n int, budget time.Duration) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	deadline := start.Add(budget)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		t0 := time.Now()
		err := smallCall(ctx, h, i)
		lat = append(lat, time.Since(t0))
		if err != nil {
			return lat, time.Since(start), err
		}
	}
	return lat, time.Since(start), nil
}

// smallCall is call i of the small-call workload, checked.
func smallCall(ctx context.Context, h *kd.Host, i int) error {
	if i%2 == 0 {
		c, err := h.Context(ctx, 0)
		if err != nil {
			return fmt.Errorf("GetContext #%d: %w", i, err)
		}
		if c.Rip == 0 {
			return fmt.Errorf("GetContext #%d: the context has no instruction pointer", i)
		}
		return nil
	}
	// Within the first 512 KiB, which every simulated target of the
	// benchmarks maps, however many calls a run makes.
	addr := sim.DataBase + uint64(i%8192)*64
	b, err := h.ReadVirtual(ctx, addr, 16)
	if err != nil {
		return fmt.Errorf("ReadVirtual #%d: %w", i, err)
	}
	return checkPattern(addr, b)
}

func checkPattern(addr uint64, b []byte) error {
	for j, c := range b {
		if c != sim.Pattern(addr+uint64(j)) {
			return fmt.Errorf("memory read at %#x differs from the target's at byte %d", addr, j)
		}
	}
	return nil
}

// dump reads n bytes of the pattern region (or what fits in budget) and
// checks every byte.
func dump(ctx context.Context, h *kd.Host, n int, budget time.Duration) (int, time.Duration, error) {
	addr := sim.DataBase + dumpOffset
	start := time.Now()
	deadline := start.Add(budget)
	done := 0
	for done < n {
		if time.Now().After(deadline) {
			break
		}
		piece := min(dumpPiece, n-done)
		b, err := h.ReadVirtual(ctx, addr+uint64(done), piece)
		if err == nil {
			err = checkPattern(addr+uint64(done), b)
		}
		done += len(b)
		if err != nil {
			return done, time.Since(start), fmt.Errorf("dump at %#x: %w", addr+uint64(done), err)
		}
	}
	return done, time.Since(start), nil
}

// breakInOnce resumes the target, lets it run briefly, and times a
// break-in until the state change arrives.
func breakInOnce(ctx context.Context, h *kd.Host) (time.Duration, error) {
	if err := h.Continue(ctx); err != nil {
		return 0, fmt.Errorf("continue: %w", err)
	}
	time.Sleep(20 * time.Millisecond)
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := h.Break(bctx); err != nil {
		return 0, fmt.Errorf("break-in: %w", err)
	}
	return time.Since(t0), nil
}

// percentile returns the q-quantile (nearest rank) of d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
