// Package bench measures kdsrv against the alternatives a user has for
// remote kernel debugging, side by side in one run: a debugger talking to
// the target directly (the local baseline), a dumb byte relay across the
// WAN (what socat or ser2net give), and kdsrv with its kdclient bridge
// across the same WAN. Each path drives the same workload through the same
// debugger (a kd.Host) against its own simulated target: small API calls,
// a bulk memory dump, and break-in. It also measures kdsrv's read-ahead,
// replays of a debugger's attach (radare2's and a WinDbg-like module walk)
// with the bridge's halted-target cache off and on, and many concurrent
// sessions through one kdsrv.
//
// The WAN is emulated in-process by package netem. Results are meant to be
// read as ratios between the paths of one run: absolute figures depend on
// the machine and on whatever else runs on it.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/netem"
)

// Path names, as used by -only and as JSON keys.
const (
	PathDirect         = "direct"
	PathByteRelay      = "byte_relay"
	PathByteRelaySocat = "byte_relay_socat"
	PathKdsrv          = "kdsrv"
	PathKdsrvReadAhead = "kdsrv_readahead"
	PathLoopback       = "loopback"
	PathAttach         = "attach"
	PathScale          = "scale"
)

// AllPaths lists every measurement in the order they run.
var AllPaths = []string{PathDirect, PathByteRelay, PathByteRelaySocat, PathKdsrv, PathKdsrvReadAhead, PathAttach, PathLoopback, PathScale}

// Config selects what to measure. Zero fields take the defaults noted.
type Config struct {
	// WAN is the emulated network between the debugger's machine and the
	// machine next to the target (byte relay and kdsrv paths).
	WAN netem.Profile
	// Calls is how many small API calls each path makes (default 300).
	Calls int
	// Dump is how many bytes the bulk dump reads (default 4 MiB).
	Dump int
	// Budget bounds each timed phase (calls, dump) of each path; a phase
	// that runs out reports what it did (default 15s).
	Budget time.Duration
	// Sessions is the number of concurrent sessions of the scale test
	// (default 1000).
	Sessions int
	// ScaleCalls is how many small calls each scale session makes
	// (default 10).
	ScaleCalls int
	// AttachModules is how many modules the attach workload's module walk
	// visits (default AttachModules, the whole list).
	AttachModules int
	// Only restricts the run to these paths (nil: all of them).
	Only []string
	// KdsrvBinary is the kdsrv executable the scale test runs as a child
	// process, so that its memory is measured alone. Empty: kdsrv runs in
	// this process and the Go heap and stacks are reported instead.
	KdsrvBinary string
	// KdsrvArgs go before kdsrv's own arguments (e.g. ChildCommand when
	// KdsrvBinary is kdbench itself).
	KdsrvArgs []string
	// Socat is the socat executable for the byte_relay_socat path (empty:
	// that path is skipped).
	Socat string
	// Progress, if set, receives one line per step.
	Progress io.Writer
}

func (c *Config) setDefaults() {
	if c.Calls <= 0 {
		c.Calls = 300
	}
	if c.Dump <= 0 {
		c.Dump = 4 << 20
	}
	if c.Budget <= 0 {
		c.Budget = 15 * time.Second
	}
	if c.Sessions <= 0 {
		c.Sessions = 1000
	}
	if c.ScaleCalls <= 0 {
		c.ScaleCalls = 10
	}
	if c.AttachModules <= 0 {
		c.AttachModules = AttachModules
	}
}

// CheckOnly validates a list of path names.
func CheckOnly(names []string) error {
	for _, n := range names {
		if !slices.Contains(AllPaths, n) {
			return fmt.Errorf("unknown path %q; choose from %s", n, strings.Join(AllPaths, ","))
		}
	}
	return nil
}

func (c *Config) wants(path string) bool {
	return len(c.Only) == 0 || slices.Contains(c.Only, path)
}

func (c *Config) progress(format string, a ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "kdbench: "+format+"\n", a...)
	}
}

// PathResult is what one path measured.
type PathResult struct {
	CallsPerS   float64 `json:"calls_per_s"`
	Calls       int     `json:"calls"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	RTTsPerCall float64 `json:"rtts_per_call"` // median call latency in WAN round trips (0 without a WAN)
	DumpMiBs    float64 `json:"dump_mib_s"`
	DumpBytes   int     `json:"dump_bytes"`
	BreakInMs   float64 `json:"breakin_ms"` // median time from break-in to the state change
	// TargetRetransmits is how many data packets the target had to send
	// again because no acknowledgement came in time (or one was asked for).
	TargetRetransmits uint64 `json:"target_retransmits"`
	// TargetResyncs counts RESEND and RESET requests the target received
	// and corrupt packets it saw.
	TargetResyncs uint64 `json:"target_resyncs"`
	// DebuggerRetransmits is the same count on the debugger's link.
	DebuggerRetransmits uint64 `json:"debugger_retransmits"`
	// BridgeHits counts dump chunks the kdclient bridge answered from
	// read-ahead data (kdsrv_readahead only).
	BridgeHits uint64 `json:"bridge_hits,omitempty"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// Loopback compares kdsrv with a direct link with no WAN at all: the cost
// of the extra hops and goroutines.
type Loopback struct {
	DirectCallsPerS    float64 `json:"direct_calls_per_s"`
	KdsrvCallsPerS     float64 `json:"kdsrv_calls_per_s"`
	KdsrvVsDirectCalls float64 `json:"kdsrv_vs_direct_calls"`
	DirectDumpMiBs     float64 `json:"direct_dump_mib_s"`
	KdsrvDumpMiBs      float64 `json:"kdsrv_dump_mib_s"`
	KdsrvVsDirectDump  float64 `json:"kdsrv_vs_direct_dump"`
	Errors             int     `json:"errors"`
}

// Scale is the many-sessions measurement.
type Scale struct {
	Sessions int     `json:"sessions"`
	Calls    int     `json:"calls"`
	RSSMiB   float64 `json:"rss_mib"`
	// RSSSource says what RSSMiB is: the kdsrv child's peak VmRSS, or (in
	// process) the growth of this process's Go heap and stacks.
	RSSSource    string  `json:"rss_source"`
	Goroutines   int     `json:"goroutines,omitempty"`    // in-process only: added by the sessions
	KdsrvThreads int     `json:"kdsrv_threads,omitempty"` // child process only
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	SetupSeconds float64 `json:"setup_s"`
	Seconds      float64 `json:"seconds"`
	Errors       int     `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
}

// Result is one run. The JSON keys are a stable interface.
type Result struct {
	RTTms     float64 `json:"rtt_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	Rate      string  `json:"rate"`
	Loss      float64 `json:"loss"`
	Calls     int     `json:"calls"`
	DumpBytes int     `json:"dump_bytes"`
	Machine   Machine `json:"machine"`

	Direct         *PathResult `json:"direct,omitempty"`
	ByteRelay      *PathResult `json:"byte_relay,omitempty"`
	ByteRelaySocat *PathResult `json:"byte_relay_socat,omitempty"`
	Kdsrv          *PathResult `json:"kdsrv,omitempty"`
	KdsrvReadAhead *PathResult `json:"kdsrv_readahead,omitempty"`
	Attach         *Attach     `json:"attach,omitempty"`
	Loopback       *Loopback   `json:"loopback,omitempty"`
	Scale          *Scale      `json:"scale,omitempty"`
	Skipped        []string    `json:"skipped,omitempty"` // paths not run, with why
}

// Errors sums the errors of every measurement.
func (r *Result) Errors() int {
	n := 0
	for _, p := range []*PathResult{r.Direct, r.ByteRelay, r.ByteRelaySocat, r.Kdsrv, r.KdsrvReadAhead} {
		if p != nil {
			n += p.Errors
		}
	}
	if a := r.Attach; a != nil {
		for _, p := range []*AttachPath{a.Direct, a.ByteRelay, a.Kdsrv, a.KdsrvCache} {
			if p != nil {
				n += p.Errors
			}
		}
	}
	if r.Loopback != nil {
		n += r.Loopback.Errors
	}
	if r.Scale != nil {
		n += r.Scale.Errors
	}
	return n
}

// Run measures every selected path in turn and returns the results. Each
// path gets fresh simulated targets; everything it starts is stopped
// before the next one runs. It fails only when the bench cannot be set up
// at all; failures inside a path are counted in its Errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := CheckOnly(cfg.Only); err != nil {
		return nil, err
	}
	rate := "unlimited"
	if cfg.WAN.Rate > 0 {
		rate = netem.FormatRate(cfg.WAN.Rate)
	}
	res := &Result{
		RTTms:     ms(2 * cfg.WAN.Delay),
		JitterMs:  ms(cfg.WAN.Jitter),
		Rate:      rate,
		Loss:      cfg.WAN.Loss,
		Calls:     cfg.Calls,
		DumpBytes: cfg.Dump,
		Machine:   Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version()},
	}
	dir, err := os.MkdirTemp("", "kdb")
	if err != nil {
		return nil, fmt.Errorf("kdbench: temporary directory for the simulated targets: %w", err)
	}
	defer os.RemoveAll(dir)

	rtt := 2 * cfg.WAN.Delay
	type pathRun struct {
		name string
		dst  **PathResult
		open opener
		wl   workload
	}
	full := workload{calls: cfg.Calls, dump: cfg.Dump, breakIn: true, budget: cfg.Budget, rtt: rtt}
	dumpOnly := workload{dump: cfg.Dump, budget: cfg.Budget, rtt: rtt}
	runs := []pathRun{
		{PathDirect, &res.Direct, openDirect(), full},
		{PathByteRelay, &res.ByteRelay, openByteRelay(cfg.WAN, ""), full},
		{PathByteRelaySocat, &res.ByteRelaySocat, openByteRelay(cfg.WAN, cfg.Socat), full},
		{PathKdsrv, &res.Kdsrv, openKdsrv(cfg.WAN, client.SessionOptions{}), full},
		{PathKdsrvReadAhead, &res.KdsrvReadAhead, openKdsrv(cfg.WAN, client.SessionOptions{ReadAhead: true}), dumpOnly},
	}
	for _, r := range runs {
		if !cfg.wants(r.name) {
			continue
		}
		if r.name == PathByteRelaySocat && cfg.Socat == "" {
			res.Skipped = append(res.Skipped, PathByteRelaySocat+": socat is not installed")
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		cfg.progress("%s: running (%s)", r.name, cfg.WAN)
		pr := runPath(ctx, dir, r.name, r.open, r.wl)
		*r.dst = pr
		cfg.progress("%s: %.0f calls/s, dump %.3f MiB/s, %d errors", r.name, pr.CallsPerS, pr.DumpMiBs, pr.Errors)
	}
	if cfg.wants(PathAttach) && ctx.Err() == nil {
		res.Attach = runAttachAll(ctx, dir, cfg)
	}
	if cfg.wants(PathLoopback) {
		cfg.progress("loopback: direct vs kdsrv without a WAN")
		lw := workload{calls: cfg.Calls, dump: min(cfg.Dump, 1<<20), budget: cfg.Budget}
		d := runPath(ctx, dir, "loopback_direct", openDirect(), lw)
		k := runPath(ctx, dir, "loopback_kdsrv", openKdsrv(netem.Profile{}, client.SessionOptions{}), lw)
		res.Loopback = &Loopback{
			DirectCallsPerS: d.CallsPerS, KdsrvCallsPerS: k.CallsPerS, KdsrvVsDirectCalls: ratio(k.CallsPerS, d.CallsPerS),
			DirectDumpMiBs: d.DumpMiBs, KdsrvDumpMiBs: k.DumpMiBs, KdsrvVsDirectDump: ratio(k.DumpMiBs, d.DumpMiBs),
			Errors: d.Errors + k.Errors,
		}
	}
	if cfg.wants(PathScale) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		cfg.progress("scale: %d sessions through one kdsrv", cfg.Sessions)
		res.Scale = runScale(ctx, dir, cfg)
		cfg.progress("scale: rss %.1f MiB, p99 %.0f µs, %d errors", res.Scale.RSSMiB, res.Scale.P99us, res.Scale.Errors)
	}
	return res, ctx.Err()
}

// runAttachAll replays the debugger attaches over the direct path, the
// byte relay, and kdsrv with the bridge's cache off and on.
func runAttachAll(ctx context.Context, dir string, cfg Config) *Attach {
	rtt := 2 * cfg.WAN.Delay
	a := &Attach{ModulesWalked: cfg.AttachModules}
	for _, p := range []struct {
		name string
		dst  **AttachPath
		open opener
	}{
		{"attach_direct", &a.Direct, openDirect()},
		{"attach_byte_relay", &a.ByteRelay, openByteRelay(cfg.WAN, "")},
		{"attach_kdsrv", &a.Kdsrv, openKdsrv(cfg.WAN, client.SessionOptions{})},
		{"attach_kdsrv_cache", &a.KdsrvCache, openKdsrv(cfg.WAN, client.SessionOptions{Cache: true})},
	} {
		if ctx.Err() != nil {
			break
		}
		cfg.progress("%s: radare2-style attach and module walk (%s)", p.name, cfg.WAN)
		r := runAttach(ctx, dir, p.name, p.open, cfg.AttachModules, rtt)
		*p.dst = r
		cfg.progress("%s: radare2 %.0f ms (%d calls), modules %.0f ms (%d calls), %d errors",
			p.name, r.Radare2.Ms, r.Radare2.Calls, r.Modules.Ms, r.Modules.Calls, r.Errors)
	}
	if a.ByteRelay != nil && a.KdsrvCache != nil {
		a.KdsrvCacheVsByteRelay = ratio(a.KdsrvCache.Radare2.Ms, a.ByteRelay.Radare2.Ms)
		a.ModulesCacheVsByteRelay = ratio(a.KdsrvCache.Modules.Ms, a.ByteRelay.Modules.Ms)
	}
	return a
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// errorList records the first error of a measurement and counts them all.
type errorList struct {
	n     int
	first error
}

func (e *errorList) add(err error) {
	if err == nil {
		return
	}
	e.n++
	if e.first == nil {
		e.first = err
	}
}

func (e *errorList) text() string {
	if e.first == nil {
		return ""
	}
	return e.first.Error()
}
