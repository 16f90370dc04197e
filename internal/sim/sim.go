// Package sim is a simulated Windows x64 kernel that speaks KDCOM in the
// target role. It serves a consistent kernel image (GetVersion, a KDBG
// debugger data block, a loaded-module list of 150 modules with their PE
// headers), a sparse memory that remembers writes,
// per-processor CONTEXTs, breakpoints, control space and MSRs, and runs
// until a break-in. Its state survives debugger disconnects: a debugger
// that attaches later gets the current state.
package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"kdsrv/internal/kd"
)

// Fixed parts of the simulated machine's address space. The kernel image
// itself moves at every boot (KASLR, see Layout); these do not.
const (
	KernSize    uint64 = 0x01000000
	KPCRBase    uint64 = 0xfffff80260000000 // KPCR of CPU n at KPCRBase + n*KPCRStride
	KPCRStride  uint64 = 0x10000
	KPRCBOffset uint64 = 0x180
	ThreadBase  uint64 = 0xffff8c85bc229800 // KTHREAD of CPU n at ThreadBase + n*0x1000
	StackBase   uint64 = 0xfffff80265a00000 // 64 KiB per CPU
	StackSize   uint64 = 0x10000
	// DataBase is a region filled with a known pattern (see Pattern), for
	// memory tests and benchmarks; its size is Config.DataSize.
	DataBase uint64 = 0xffffa00000000000
)

// Offsets from KernBase of what lives in the kernel image; Layout adds
// them to one boot's KernBase.
const (
	OffPsLoadedModuleList  uint64 = 0xC1A000
	OffPsActiveProcessHead uint64 = 0xC1A010
	OffDebuggerDataList    uint64 = 0xC1A020 // list head; Flink -> KDBG
	OffCmNtCSDVersion      uint64 = 0xC1A030 // u32: service pack << 8
	OffDebuggerDataBlock   uint64 = 0xC1B000 // KDDEBUGGER_DATA64
	OffBreakAddress        uint64 = 0x3F0000 // DbgBreakPointWithStatus: int3; ret
	OffIdleAddress         uint64 = 0x3F1000 // where CPUs "run"
	OffSystemCall          uint64 = 0x410000 // KiSystemCall64 (LSTAR)
)

// Layout is where one boot of the simulated kernel put its image. Like
// Windows with KASLR, every boot loads the kernel at a new KernBase, and
// everything inside the image moves with it, so a debugger (or a test)
// can tell a new boot from the old one.
type Layout struct {
	KernBase            uint64
	PsLoadedModuleList  uint64
	PsActiveProcessHead uint64
	DebuggerDataList    uint64
	CmNtCSDVersion      uint64
	DebuggerDataBlock   uint64 // the KDBG block
	BreakAddress        uint64 // where every stop is reported
	IdleAddress         uint64 // where running CPUs are
	SystemCall          uint64
}

// LayoutAt is the layout of a kernel loaded at kernBase.
func LayoutAt(kernBase uint64) Layout {
	return Layout{
		KernBase:            kernBase,
		PsLoadedModuleList:  kernBase + OffPsLoadedModuleList,
		PsActiveProcessHead: kernBase + OffPsActiveProcessHead,
		DebuggerDataList:    kernBase + OffDebuggerDataList,
		CmNtCSDVersion:      kernBase + OffCmNtCSDVersion,
		DebuggerDataBlock:   kernBase + OffDebuggerDataBlock,
		BreakAddress:        kernBase + OffBreakAddress,
		IdleAddress:         kernBase + OffIdleAddress,
		SystemCall:          kernBase + OffSystemCall,
	}
}

// KASLR range: the kernel is loaded on a 2 MiB boundary in
// [kaslrLow, kaslrLow + kaslrSlots*2 MiB), clear of the KPCRs and stacks.
const (
	kaslrLow   uint64 = 0xfffff80000000000
	kaslrAlign uint64 = 0x200000
	kaslrSlots        = 0x4000
)

// randomKernBase picks a load address for a boot, different from prev.
func randomKernBase(prev uint64) uint64 {
	for {
		b := kaslrLow + uint64(rand.IntN(kaslrSlots))*kaslrAlign
		fixedLo, fixedHi := KPCRBase, StackBase+64*StackSize
		if b != prev && (b+KernSize+ModulesSize <= fixedLo || b >= fixedHi) {
			return b
		}
	}
}

// Pattern is the initial content of the data region at addr: a cheap hash,
// so tests can predict any byte without reading the target.
func Pattern(addr uint64) byte {
	x := addr * 0x9E3779B97F4A7C15
	return byte(x >> 56)
}

// PatternBytes is the initial content of the n bytes of the data region
// at addr (Pattern of each address).
func PatternBytes(addr uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = Pattern(addr + uint64(i))
	}
	return b
}

// Config describes the simulated machine.
type Config struct {
	Build       uint16        // Windows build number reported by GetVersion (default 19045)
	ServicePack uint8         // service pack number (CmNtCSDVersion bits 8-15)
	Processors  int           // number of CPUs, 1-64 (default 1)
	DataSize    uint64        // size of the pattern region at DataBase (default 16 MiB)
	PrintEvery  time.Duration // while running, DbgPrint a line this often (0 = never)
	StartHalted bool          // start (and restart after a reboot) stopped at a breakpoint instead of running
	AckTimeout  time.Duration // link retransmission time-out (default 500ms)
	// PrintRetries is the retry budget of a DbgPrint before the target
	// decides no debugger is present (default 4).
	PrintRetries int
	// KernBase is where the first boot loads the kernel image (0: a
	// random, 2 MiB aligned address, as KASLR does). Every later boot
	// (Reboot) picks a new random address.
	KernBase uint64
	// AnswerResetWhileRunning makes a running strict target answer RESET
	// (reply RESET, restart the id streams) as some VMs' debug stubs do.
	// A Windows kernel that runs consumes and ignores it.
	AnswerResetWhileRunning bool
	// Console is text the target writes on its line, outside KD packets,
	// when a debugger connects (a boot banner on a shared serial port);
	// ConsoleEvery repeats a numbered console line that often while a
	// debugger is connected (0 = never). Only KDCOM links carry it.
	Console      string
	ConsoleEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Build == 0 {
		c.Build = 19045
	}
	if c.Processors <= 0 {
		c.Processors = 1
	}
	if c.Processors > 64 {
		c.Processors = 64
	}
	if c.DataSize == 0 {
		c.DataSize = 16 << 20
	}
	if c.PrintRetries <= 0 {
		c.PrintRetries = 4
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 500 * time.Millisecond
	}
}

// Stats counts what the target saw, over every debugger connection.
type Stats struct {
	Link             kd.Stats // summed link counters (retransmits, resets, noise…)
	StateChanges     uint64   // state changes sent (including re-sends)
	Requests         uint64   // manipulate requests handled
	Prints           uint64   // DbgPrint packets delivered
	Connections      uint64   // debugger connections served
	UnsupportedCalls uint64
	Boots            uint64 // boots, the first included
}

type breakpoint struct {
	addr uint64
	orig byte
}

// Machine is one simulated machine: its memory, processors and kernel,
// with the kernel's KD state, reachable through a debug port (Listen,
// Connect, ServePTY, ServeSerial, ServeKDNET) or Serve.
type Machine struct {
	cfg Config

	serveMu sync.Mutex // one debugger connection at a time

	mu       sync.Mutex
	layout   Layout
	mem      *Memory
	physical *Memory
	boot     uint64        // boot number, from 1
	bootEnd  chan struct{} // closed when the current boot ends (Reboot)
	halted   bool
	scAcked  bool // the current state change reached a debugger
	cpu      uint16
	exc      uint32 // exception code of the current stop
	ctxs     []kd.ContextX64
	special  [][]byte // KSPECIAL_REGISTERS per CPU
	msrs     map[uint32]uint64
	bps      map[uint32]breakpoint
	nextBP   uint32
	ticks    uint64
	stats    Stats
	linkSum  kd.Stats
	curLink  kd.Endpoint

	// The strict KDCOM kernel (kernel.go): its serial port, its power
	// (the kernel goroutine runs while someone holds the machine on) and
	// its KD state, kept across connections.
	port  *serialPort
	power powerState
	kdcom kdcomState
}

// New builds a machine and boots it.
func New(cfg Config) *Machine {
	cfg.setDefaults()
	m := &Machine{cfg: cfg, port: newSerialPort()}
	m.mu.Lock()
	m.bootLocked(cfg.KernBase)
	m.mu.Unlock()
	return m
}

// bootLocked (re)starts the machine: a fresh memory image with the kernel
// at kernBase (0 = random), fresh processors, no breakpoints, and the
// debug link's id streams restarted.
func (m *Machine) bootLocked(kernBase uint64) {
	if kernBase == 0 {
		kernBase = randomKernBase(m.layout.KernBase)
	}
	m.layout = LayoutAt(kernBase)
	m.mem = newMemory()
	m.physical = newMemory()
	m.msrs = make(map[uint32]uint64)
	m.bps = make(map[uint32]breakpoint)
	m.nextBP = 1
	m.halted = m.cfg.StartHalted
	m.scAcked = false
	m.cpu = 0
	m.exc = kd.StatusBreakpoint
	m.ctxs, m.special = nil, nil
	m.ticks = 0
	m.boot++
	m.stats.Boots++
	if m.bootEnd != nil {
		close(m.bootEnd)
	}
	m.bootEnd = make(chan struct{})
	m.buildImage()
}

// Reboot restarts the simulated machine, as a reset button does: memory
// and processors start afresh, the kernel loads at a new KernBase
// (KASLR), the debug link forgets its packet ids (the first packet of
// the new boot carries the sync bit) and the machine runs (or stops at
// its initial breakpoint with StartHalted). A debugger connection that is
// plugged in stays plugged in, as a VM's serial pipe survives a guest
// reboot; a KDNET target starts a new session.
func (m *Machine) Reboot() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bootLocked(0)
}

// Layout returns where the current boot loaded the kernel.
func (m *Machine) Layout() Layout {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.layout
}

// Boot returns the number of the current boot (1 for the first).
func (m *Machine) Boot() uint64 {
	boot, _ := m.bootDone()
	return boot
}

// bootDone returns the current boot number and a channel closed when that
// boot ends.
func (m *Machine) bootDone() (uint64, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boot, m.bootEnd
}

// Config returns the machine's configuration (with defaults applied).
func (m *Machine) Config() Config { return m.cfg }

// Memory gives tests direct access to the simulated address space of the
// current boot.
func (m *Machine) Memory() *Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mem
}

// memories returns the current boot's virtual and physical memory.
func (m *Machine) memories() (virt, phys *Memory) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mem, m.physical
}

// buildImage lays out the kernel image of a boot. The caller holds m.mu.
func (m *Machine) buildImage() {
	mem := m.mem
	lo := m.layout
	mem.Map("nt", lo.KernBase, KernSize, true, nil)
	mem.Map("kpcr", KPCRBase, KPCRStride*uint64(m.cfg.Processors), true, nil)
	mem.Map("threads", ThreadBase&^(PageSize-1), 0x1000*uint64(m.cfg.Processors)+PageSize, true, nil)
	mem.Map("stacks", StackBase, StackSize*uint64(m.cfg.Processors), true, nil)
	mem.Map("data", DataBase, m.cfg.DataSize, true, Pattern)
	// Physical memory: 16 MiB of pattern.
	m.physical.Map("ram", 0, 16<<20, true, Pattern)

	// The loaded-module list, ntoskrnl.exe first, and a minimal PE header
	// at every module's base (the kernel's included).
	m.buildModules()
	// Code at the break address: int3; ret; then int3 padding.
	code := []byte{0xcc, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0}
	mem.write(lo.BreakAddress, code, true)
	// Idle loop: pause; jmp $-2.
	mem.write(lo.IdleAddress, []byte{0xf3, 0x90, 0xeb, 0xfc}, true)
	// The process list is empty: its head points to itself.
	mem.put64(lo.PsActiveProcessHead, lo.PsActiveProcessHead)
	mem.put64(lo.PsActiveProcessHead+8, lo.PsActiveProcessHead)
	// The debugger data list holds the one KDBG block.
	mem.put64(lo.DebuggerDataList, lo.DebuggerDataBlock)
	mem.put64(lo.DebuggerDataList+8, lo.DebuggerDataBlock)
	mem.put32(lo.CmNtCSDVersion, uint32(m.cfg.ServicePack)<<8)
	kdbg := kd.BuildDebuggerData(kd.DebuggerData{
		ListFlink:           lo.DebuggerDataList,
		ListBlink:           lo.DebuggerDataList,
		KernBase:            lo.KernBase,
		PsLoadedModuleList:  lo.PsLoadedModuleList,
		PsActiveProcessHead: lo.PsActiveProcessHead,
		CmNtCSDVersion:      lo.CmNtCSDVersion,
	})
	mem.write(lo.DebuggerDataBlock, kdbg, true)

	for cpu := range m.cfg.Processors {
		kpcr := KPCRBase + uint64(cpu)*KPCRStride
		mem.put64(kpcr+0x18, kpcr)                   // Self
		mem.put64(kpcr+0x20, kpcr+KPRCBOffset)       // CurrentPrcb
		mem.put64(kpcr+KPRCBOffset+8, m.thread(cpu)) // Prcb.CurrentThread
		m.ctxs = append(m.ctxs, m.initialContext(cpu))
		sp := make([]byte, 0x178)
		binary.LittleEndian.PutUint64(sp[0x00:], 0x80050033) // Cr0
		binary.LittleEndian.PutUint64(sp[0x10:], 0x1aa000)   // Cr3
		binary.LittleEndian.PutUint64(sp[0x18:], 0x350ef8)   // Cr4
		m.special = append(m.special, sp)
	}
	m.msrs[0xC0000082] = lo.SystemCall // LSTAR: KiSystemCall64
	m.msrs[0xC0000101] = KPCRBase      // GS base
	m.msrs[0x1B] = 0xfee00900          // APIC base
}

func (m *Machine) thread(cpu int) uint64 { return ThreadBase + uint64(cpu)*0x1000 }

// initialContext is a CPU's context at boot. The caller holds m.mu.
func (m *Machine) initialContext(cpu int) kd.ContextX64 {
	c := kd.ContextX64{
		ContextFlags: kd.ContextAll,
		MxCsr:        0x1f80,
		SegCs:        0x10, SegDs: 0x2b, SegEs: 0x2b, SegFs: 0x53, SegGs: 0x2b, SegSs: 0x18,
		EFlags: 0x246,
		Dr7:    0x400, Dr6: 0xffff0ff0,
		Rip: m.layout.BreakAddress,
		Rsp: StackBase + uint64(cpu+1)*StackSize - 0x28,
		Rbp: StackBase + uint64(cpu+1)*StackSize - 0x10,
	}
	// Distinct, recognisable values in the general registers.
	regs := []*uint64{&c.Rax, &c.Rbx, &c.Rcx, &c.Rdx, &c.Rsi, &c.Rdi, &c.R8, &c.R9, &c.R10, &c.R11, &c.R12, &c.R13, &c.R14, &c.R15}
	for i, r := range regs {
		*r = uint64(cpu)<<32 | uint64(0x1000+i*0x111)
	}
	return c
}

// Halted reports whether the target is stopped in the debugger.
func (m *Machine) Halted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.halted
}

// Context returns a copy of a CPU's register context.
func (m *Machine) Context(cpu int) kd.ContextX64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ctxs[cpu]
}

// Stats returns the counters over all connections so far.
func (m *Machine) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Link = m.linkSum
	if m.curLink != nil {
		s.Link = s.Link.Add(m.curLink.Stats())
	}
	return s
}

// Serve runs the target on one debugger connection until the connection
// fails or ctx ends. It closes conn. The machine's state carries over to
// the next Serve call, as a real target keeps running when a debugger goes
// away. Only one connection is served at a time; a second Serve waits.
//
// The machine speaks KDCOM as a Windows kernel does (kernel.go): one KD
// state for the machine, kept across connections (packet ids continue,
// a stopped machine stays stopped on the same state change), a running
// kernel that only polls for the break-in byte, and id streams that only
// a RESET received while stopped or a reboot restart.
func (m *Machine) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	return m.serveStrict(ctx, conn)
}

// ServeEndpoint is Serve over a message-level link in the target role (for
// example a KDNET target endpoint). It returns when l fails or ctx ends;
// the caller closes l. Like Serve, one link is served at a time.
func (m *Machine) ServeEndpoint(ctx context.Context, l kd.Endpoint) error {
	m.serveMu.Lock()
	defer m.serveMu.Unlock()
	return m.serve(ctx, l, func() {})
}

// serve runs the kernel on l; closeLink runs when it ends, before the
// link's counters are added up. The caller holds serveMu.
func (m *Machine) serve(ctx context.Context, l kd.Endpoint, closeLink func()) error {
	m.mu.Lock()
	m.curLink = l
	m.stats.Connections++
	m.mu.Unlock()
	defer func() {
		closeLink()
		m.mu.Lock()
		m.linkSum = m.linkSum.Add(l.Stats())
		m.curLink = nil
		m.mu.Unlock()
	}()
	c := &debuggerConn{m: m, l: l, present: true}
	stopConsole := func() {}
	if kl, ok := l.(*kd.Link); ok {
		stopConsole = m.startConsole(ctx, kl.WriteRaw)
	}
	err := c.run(ctx)
	stopConsole()
	if ctx.Err() != nil || isDisconnect(err) || errors.Is(err, errRebooted) {
		return nil
	}
	return err
}

// isDisconnect reports errors that only mean the debugger went away.
func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, kd.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EIO)
}

// debuggerConn is the state of one debugger connection.
type debuggerConn struct {
	m       *Machine
	l       kd.Endpoint
	present bool // a debugger answered recently
	// scResets is how many RESETs the link had seen when the last state
	// change was sent: a queued RESET older than that needs no re-send.
	scResets uint64
}

func (c *debuggerConn) run(ctx context.Context) error {
	c.m.mu.Lock()
	resend := c.m.halted && !c.m.scAcked
	c.m.mu.Unlock()
	if resend {
		// A state change no debugger acknowledged yet: keep sending it.
		if err := c.sendStateChange(ctx); err != nil {
			return err
		}
	}
	nextTick := time.Now().Add(c.m.cfg.PrintEvery)
	for {
		rctx := ctx
		var cancel context.CancelFunc = func() {}
		if c.m.cfg.PrintEvery > 0 && !c.m.Halted() {
			rctx, cancel = context.WithDeadline(ctx, nextTick)
		}
		m, err := c.l.Recv(rctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				nextTick = time.Now().Add(c.m.cfg.PrintEvery)
				if err := c.tick(ctx); err != nil {
					return err
				}
				continue
			}
			return err
		}
		c.present = true
		if err := c.handle(ctx, m); err != nil {
			return err
		}
	}
}

func (c *debuggerConn) handle(ctx context.Context, m kd.Message) error {
	switch m.Kind {
	case kd.MsgBreakIn:
		c.m.mu.Lock()
		if !c.m.halted {
			c.m.halted = true
			c.m.exc = kd.StatusBreakpoint
			c.m.cpu = 0
			for i := range c.m.ctxs {
				c.m.ctxs[i].Rip = c.m.layout.BreakAddress
			}
		}
		c.m.mu.Unlock()
		// Halted already: a debugger that only sends break-in to attach
		// gets the current state again.
		return c.sendStateChange(ctx)
	case kd.MsgReset:
		if c.m.Halted() && m.ResetSeq > c.scResets {
			return c.sendStateChange(ctx)
		}
		return nil
	case kd.MsgResend:
		if c.m.Halted() {
			return c.sendStateChange(ctx)
		}
		return nil
	case kd.MsgPacket:
		if m.Packet.Type != kd.TypeStateManipulate || !c.m.Halted() {
			return nil // host replies we did not ask for, or requests while running
		}
		req, err := kd.DecodeManipulate(m.Packet.Payload)
		if err != nil {
			return nil
		}
		return c.manipulate(ctx, req)
	}
	return nil
}

// tick runs while the target is running: periodic DbgPrint output.
func (c *debuggerConn) tick(ctx context.Context) error {
	if !c.present {
		return nil
	}
	d := kd.NewPrintString([]byte(c.m.tickLine()))
	err := c.l.SendRetries(ctx, kd.TypeDebugIO, d.Append(nil), c.m.cfg.PrintRetries)
	if errors.Is(err, kd.ErrRetriesExhausted) {
		c.present = false // no debugger: stop printing until one speaks
		return nil
	}
	if err == nil {
		c.m.printed()
	}
	return err
}

// tickLine is the next periodic DbgPrint line of a running machine.
func (m *Machine) tickLine() string {
	m.mu.Lock()
	m.ticks++
	n := m.ticks
	m.mu.Unlock()
	return fmt.Sprintf("kdtarget: tick %d\n", n)
}

// printed counts a DbgPrint line a debugger took.
func (m *Machine) printed() {
	m.mu.Lock()
	m.stats.Prints++
	m.mu.Unlock()
}

func (c *debuggerConn) sendStateChange(ctx context.Context) error {
	sc := c.m.stateChange()
	epoch, err := c.l.SendEpoch(ctx, kd.TypeStateChange64, sc.Append(nil))
	if err != nil {
		return err
	}
	c.scResets = epoch
	c.m.mu.Lock()
	c.m.scAcked = true
	c.m.stats.StateChanges++
	c.m.mu.Unlock()
	return nil
}

// stateChange builds the exception state change for the current stop.
func (m *Machine) stateChange() kd.StateChange {
	m.mu.Lock()
	defer m.mu.Unlock()
	cpu := m.cpu
	ctx := &m.ctxs[cpu]
	sc := kd.StateChange{
		NewState:         uint32(kd.StateException),
		ProcessorLevel:   6,
		Processor:        cpu,
		NumberProcessors: uint32(m.cfg.Processors),
		Thread:           m.thread(int(cpu)),
		ProgramCounter:   ctx.Rip,
	}
	sc.Exception.ExceptionCode = m.exc
	sc.Exception.ExceptionAddress = ctx.Rip
	sc.Exception.FirstChance = 1
	if m.exc == kd.StatusBreakpoint {
		sc.Exception.NumberParameters = 1
	}
	sc.Control.Dr6 = ctx.Dr6
	sc.Control.Dr7 = ctx.Dr7
	sc.Control.EFlags = ctx.EFlags
	sc.Control.ReportFlags = 3
	n := m.mem.Read(ctx.Rip, sc.Control.InstructionStream[:])
	// Report the original bytes, not our int3 patches.
	for _, bp := range m.bps {
		if bp.addr >= ctx.Rip && bp.addr < ctx.Rip+uint64(n) {
			sc.Control.InstructionStream[bp.addr-ctx.Rip] = bp.orig
		}
	}
	sc.Control.InstructionCount = uint16(n)
	sc.Control.SegCs, sc.Control.SegDs, sc.Control.SegEs, sc.Control.SegFs = ctx.SegCs, ctx.SegDs, ctx.SegEs, ctx.SegFs
	return sc
}

// startConsole writes Config.Console with write (between packets), and
// then a numbered line every Config.ConsoleEvery, until stop is called or
// a write fails.
func (m *Machine) startConsole(ctx context.Context, write func([]byte) error) (stop func()) {
	if m.cfg.Console == "" && m.cfg.ConsoleEvery <= 0 {
		return func() {}
	}
	if m.cfg.Console != "" {
		if write([]byte(m.cfg.Console)) != nil {
			return func() {}
		}
	}
	if m.cfg.ConsoleEvery <= 0 {
		return func() {}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(m.cfg.ConsoleEvery)
		defer tk.Stop()
		for n := 1; ; n++ {
			select {
			case <-cctx.Done():
				return
			case <-tk.C:
			}
			if write(fmt.Appendf(nil, "kdtarget: console line %d\r\n", n)) != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
