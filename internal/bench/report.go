package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints r as a table, followed by the ratios that matter.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "WAN: rtt %gms, jitter ±%gms, rate %s, loss %g; %d CPUs (%s/%s, %s)\n\n",
		r.RTTms, r.JitterMs, r.Rate, r.Loss, r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.GoVersion)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, p := range []struct {
		name string
		r    *PathResult
	}{{PathDirect, r.Direct}, {PathByteRelay, r.ByteRelay}, {PathByteRelaySocat, r.ByteRelaySocat}, {PathKdsrv, r.Kdsrv}, {PathKdsrvReadAhead, r.KdsrvReadAhead}} {
		if p.r == nil {
			continue
		}
		x := p.r
		if !header {
			fmt.Fprintln(tw, "path\tcalls/s\tp50 µs\tp99 µs\tRTTs/call\tdump MiB/s\tbreak-in ms\ttarget retx\ttarget resync\tdebugger retx\terrors\t")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%d\t%d\t%d\t%d\t\n", p.name,
			dash(x.CallsPerS, "%.0f"), dash(x.P50us, "%.0f"), dash(x.P99us, "%.0f"), dash(x.RTTsPerCall, "%.2f"),
			x.DumpMiBs, dash(x.BreakInMs, "%.1f"), x.TargetRetransmits, x.TargetResyncs, x.DebuggerRetransmits, x.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if header {
		b.WriteString("\n")
	}
	if r.Kdsrv != nil && r.ByteRelay != nil {
		fmt.Fprintf(&b, "kdsrv vs byte relay: %.2fx calls/s, %.2fx dump; RTTs per call %.2f vs %.2f\n",
			ratio(r.Kdsrv.CallsPerS, r.ByteRelay.CallsPerS), ratio(r.Kdsrv.DumpMiBs, r.ByteRelay.DumpMiBs),
			r.Kdsrv.RTTsPerCall, r.ByteRelay.RTTsPerCall)
	}
	if r.KdsrvReadAhead != nil && r.ByteRelay != nil {
		fmt.Fprintf(&b, "kdsrv with read-ahead vs byte relay: %.1fx dump (%d chunks answered by the bridge)\n",
			ratio(r.KdsrvReadAhead.DumpMiBs, r.ByteRelay.DumpMiBs), r.KdsrvReadAhead.BridgeHits)
	}
	if a := r.Attach; a != nil {
		if header {
			b.WriteString("\n")
		}
		b.WriteString("attach replays (wall time, sync included; a fresh session each):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "path\tradare2 ms\tcalls\tRTTs/call\tcache hits\tmodule walk ms\tcalls\tRTTs/call\tcache hits\terrors\t")
		for _, p := range []struct {
			name string
			r    *AttachPath
		}{{PathDirect, a.Direct}, {PathByteRelay, a.ByteRelay}, {PathKdsrv, a.Kdsrv}, {PathKdsrv + "_cache", a.KdsrvCache}} {
			if p.r == nil {
				continue
			}
			x := p.r
			fmt.Fprintf(tw, "%s\t%.0f\t%d\t%s\t%d\t%.0f\t%d\t%s\t%d\t%d\t\n", p.name,
				x.Radare2.Ms, x.Radare2.Calls, dash(x.Radare2.RTTsPerCall, "%.2f"), x.Radare2.CacheHits,
				x.Modules.Ms, x.Modules.Calls, dash(x.Modules.RTTsPerCall, "%.2f"), x.Modules.CacheHits, x.Errors)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if a.ByteRelay != nil && a.KdsrvCache != nil {
			fmt.Fprintf(&b, "attach: kdsrv with the cache takes %.2fx the byte relay's time (radare2), %.2fx (module walk of %d modules)\n",
				a.KdsrvCacheVsByteRelay, a.ModulesCacheVsByteRelay, a.ModulesWalked)
		}
		for _, x := range []*AttachPath{a.Direct, a.ByteRelay, a.Kdsrv, a.KdsrvCache} {
			if x != nil && x.FirstError != "" {
				fmt.Fprintf(&b, "attach error: %s\n", x.FirstError)
			}
		}
	}
	if l := r.Loopback; l != nil {
		fmt.Fprintf(&b, "loopback (no WAN): kdsrv/direct %.2fx calls/s (%.0f vs %.0f), %.2fx dump\n",
			l.KdsrvVsDirectCalls, l.KdsrvCallsPerS, l.DirectCallsPerS, l.KdsrvVsDirectDump)
	}
	if s := r.Scale; s != nil {
		fmt.Fprintf(&b, "scale: %d sessions, %d calls each: %.1f MiB (%s), p50 %.0f µs, p99 %.0f µs, setup %.1fs, %d errors\n",
			s.Sessions, s.Calls, s.RSSMiB, s.RSSSource, s.P50us, s.P99us, s.SetupSeconds, s.Errors)
	}
	for _, x := range []*PathResult{r.Direct, r.ByteRelay, r.ByteRelaySocat, r.Kdsrv, r.KdsrvReadAhead} {
		if x != nil && x.FirstError != "" {
			fmt.Fprintf(&b, "error: %s\n", x.FirstError)
		}
	}
	if r.Scale != nil && r.Scale.FirstError != "" {
		fmt.Fprintf(&b, "scale error: %s\n", r.Scale.FirstError)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "skipped %s\n", s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}
