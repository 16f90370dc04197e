package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

// The attach workload replays what a debugger does when it attaches to a
// halted kernel, on a fresh session each time, and reports the wall time
// from the break-in to the last answer: what a user waits for.
//
//   - radare2: the sequence radare2 5.9's winkd plugin makes (sync,
//     GetVersion, the KDBG chain four times over, the register context
//     eleven times, 256 bytes at RIP ten times, the top of the stack twice): 45 calls
//     of which 9 are distinct.
//   - modules: a WinDbg-like walk of PsLoadedModuleList (every
//     LDR_DATA_TABLE_ENTRY, both of its names, the PE header at its
//     DllBase), then the walk again as `lm` does after `.reload`
//     (entries and base names), then the context and the code at RIP.
//
// Every answer is checked against what the simulated target holds.

// AttachModules is how many modules the module walk visits by default
// (the simulated target has sim.Modules).
const AttachModules = sim.Modules

// AttachRun is one replay on one path.
type AttachRun struct {
	Ms    float64 `json:"ms"`    // wall time, sync included
	Calls int     `json:"calls"` // KD API calls the debugger made (sync not counted)
	// RTTsPerCall is the wall time over calls, in WAN round trips.
	RTTsPerCall float64 `json:"rtts_per_call"`
	// CacheHits is how many of the calls the bridge's halted-target cache
	// answered (kdsrv_cache only).
	CacheHits uint64 `json:"cache_hits,omitempty"`
}

// AttachPath is what one path measured for both replays.
type AttachPath struct {
	Radare2    AttachRun `json:"radare2"`
	Modules    AttachRun `json:"modules"`
	Errors     int       `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
}

// Attach is the attach workload over every path.
type Attach struct {
	ModulesWalked int         `json:"modules_walked"`
	Direct        *AttachPath `json:"direct,omitempty"`
	ByteRelay     *AttachPath `json:"byte_relay,omitempty"`
	Kdsrv         *AttachPath `json:"kdsrv,omitempty"`       // kdsrv and the bridge, cache off
	KdsrvCache    *AttachPath `json:"kdsrv_cache,omitempty"` // the same with the halted-target cache
	// KdsrvCacheVsByteRelay is the radare2 replay's wall time through
	// kdsrv with the cache over the byte relay's (the acceptance figure).
	KdsrvCacheVsByteRelay float64 `json:"kdsrv_cache_vs_byte_relay"`
	// ModulesCacheVsByteRelay is the same ratio for the module walk.
	ModulesCacheVsByteRelay float64 `json:"modules_cache_vs_byte_relay"`
}

// replay is one debugger attach sequence; it returns the calls it made.
type replay func(ctx context.Context, h *kd.Host, st *sim.Machine) (int, error)

// runAttach measures both replays on path open, each on a fresh target and
// session.
func runAttach(ctx context.Context, dir, name string, open opener, modules int, rtt time.Duration) *AttachPath {
	res := &AttachPath{}
	var errs errorList
	for _, r := range []struct {
		dst *AttachRun
		fn  replay
	}{
		{&res.Radare2, radare2Attach},
		{&res.Modules, func(ctx context.Context, h *kd.Host, st *sim.Machine) (int, error) {
			return moduleWalk(ctx, h, st, modules)
		}},
	} {
		if ctx.Err() != nil {
			break
		}
		errs.add(attachOnce(ctx, dir, name, open, r.fn, r.dst, rtt))
	}
	res.Errors, res.FirstError = errs.n, errs.text()
	return res
}

func attachOnce(ctx context.Context, dir, name string, open opener, fn replay, dst *AttachRun, rtt time.Duration) error {
	st, err := startSim(dir, name, 1<<20)
	if err != nil {
		return err
	}
	defer st.Close()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	sess, err := open(sctx, dir, st)
	if err != nil {
		return fmt.Errorf("%s: connecting: %w", name, err)
	}
	defer sess.close()
	// The target runs, as a kernel does when a debugger comes; the replay
	// starts with the break-in.
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Minute)
	defer rcancel()
	t0 := time.Now()
	if _, err := sess.host.Attach(rctx); err != nil {
		return fmt.Errorf("%s: attaching: %w", name, err)
	}
	calls, err := fn(rctx, sess.host, st.sim)
	elapsed := time.Since(t0)
	if err != nil {
		return fmt.Errorf("%s: attach replay: %w", name, err)
	}
	dst.Ms, dst.Calls = ms(elapsed), calls
	if rtt > 0 && calls > 0 {
		dst.RTTsPerCall = float64(elapsed) / float64(calls) / float64(rtt)
	}
	if sess.bridge != nil {
		dst.CacheHits = sess.bridge.CacheStats().Hits
	}
	return nil
}

// checker makes a replay's calls, counts them and checks each answer.
type checker struct {
	ctx   context.Context
	h     *kd.Host
	st    *sim.Machine
	calls int
}

func (c *checker) version() (kd.Version, error) {
	c.calls++
	v, err := c.h.Version(c.ctx)
	if err != nil {
		return v, fmt.Errorf("GetVersion: %w", err)
	}
	if lo := c.st.Layout(); v.KernBase != lo.KernBase || v.DebuggerDataList != lo.DebuggerDataList {
		return v, fmt.Errorf("GetVersion: KernBase %#x, the target's is %#x", v.KernBase, lo.KernBase)
	}
	return v, nil
}

// read reads n bytes at addr and checks them against the target's memory.
func (c *checker) read(addr uint64, n int) ([]byte, error) {
	c.calls++
	b, err := c.h.ReadVirtual(c.ctx, addr, n)
	if err != nil {
		return nil, fmt.Errorf("read %d bytes at %#x: %w", n, addr, err)
	}
	want := make([]byte, n)
	want = want[:c.st.Memory().Read(addr, want)]
	if string(b) != string(want) {
		return nil, fmt.Errorf("read %d bytes at %#x: the answer differs from the target's memory", n, addr)
	}
	return b, nil
}

func (c *checker) context() (kd.ContextX64, error) {
	c.calls++
	x, err := c.h.Context(c.ctx, 0)
	if err != nil {
		return x, fmt.Errorf("GetContext: %w", err)
	}
	if x != c.st.Context(0) {
		return x, fmt.Errorf("GetContext: the answer differs from the target's registers")
	}
	return x, nil
}

func u64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// kdbgChain is what a debugger reads to identify the kernel: GetVersion,
// the debugger data list head, and from the KDBG block PaeEnabled and the
// service pack behind CmNtCSDVersion.
func (c *checker) kdbgChain() error {
	v, err := c.version()
	if err != nil {
		return err
	}
	head, err := c.read(v.DebuggerDataList, 8)
	if err != nil {
		return err
	}
	kdbg := u64(head)
	if _, err := c.read(kdbg+kd.DebuggerDataOffPaeEnabled, 2); err != nil {
		return err
	}
	p, err := c.read(kdbg+kd.DebuggerDataOffCmNtCSDVersion, 8)
	if err != nil {
		return err
	}
	_, err = c.read(u64(p), 4)
	return err
}

// radare2Attach is radare2 5.9's attach after the sync: 45 calls, 9
// distinct.
func radare2Attach(ctx context.Context, h *kd.Host, st *sim.Machine) (int, error) {
	c := &checker{ctx: ctx, h: h, st: st}
	for range 4 { // 5 calls each, the same 5
		if err := c.kdbgChain(); err != nil {
			return c.calls, err
		}
	}
	head, err := c.read(st.Layout().DebuggerDataList, 8)
	if err != nil {
		return c.calls, err
	}
	if _, err := c.read(u64(head), 16); err != nil { // the KDBG header
		return c.calls, err
	}
	var x kd.ContextX64
	for range 10 {
		if x, err = c.context(); err != nil {
			return c.calls, err
		}
		if _, err := c.read(x.Rip, 256); err != nil {
			return c.calls, err
		}
	}
	if x, err = c.context(); err != nil {
		return c.calls, err
	}
	for range 2 {
		if _, err := c.read(x.Rsp, 32); err != nil { // the top of the stack
			return c.calls, err
		}
	}
	return c.calls, nil
}

// moduleWalk is a WinDbg-like attach: identify the kernel, walk
// PsLoadedModuleList reading each entry, its names and its module's PE
// header (.reload), walk it again for the entries and base names (lm), and
// show where the target stopped. It visits at most limit modules.
func moduleWalk(ctx context.Context, h *kd.Host, st *sim.Machine, limit int) (int, error) {
	c := &checker{ctx: ctx, h: h, st: st}
	v, err := c.version()
	if err != nil {
		return c.calls, err
	}
	head, err := c.read(v.DebuggerDataList, 8)
	if err != nil {
		return c.calls, err
	}
	if _, err := c.read(u64(head), kd.DebuggerDataSize); err != nil {
		return c.calls, err
	}
	name := func(entry []byte, off uint64) error {
		n := int(binary.LittleEndian.Uint16(entry[off:]))
		if n == 0 {
			return nil
		}
		_, err := c.read(u64(entry[off+8:]), n)
		return err
	}
	for pass := range 2 {
		lh, err := c.read(v.PsLoadedModuleList, 16)
		if err != nil {
			return c.calls, err
		}
		e := u64(lh)
		for i := 0; i < limit && e != v.PsLoadedModuleList; i++ {
			entry, err := c.read(e, int(sim.LdrEntrySize))
			if err != nil {
				return c.calls, err
			}
			if len(entry) < int(sim.LdrEntrySize) {
				return c.calls, fmt.Errorf("module entry at %#x: %d bytes", e, len(entry))
			}
			if pass == 0 {
				if err := name(entry, sim.LdrFullDllName); err != nil {
					return c.calls, err
				}
			}
			if err := name(entry, sim.LdrBaseDllName); err != nil {
				return c.calls, err
			}
			if pass == 0 {
				if _, err := c.read(u64(entry[sim.LdrDllBase:]), sim.PEHeaderSize); err != nil {
					return c.calls, err
				}
			}
			e = u64(entry)
		}
	}
	x, err := c.context()
	if err != nil {
		return c.calls, err
	}
	_, err = c.read(x.Rip, 256)
	return c.calls, err
}
