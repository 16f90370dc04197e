//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
	"kdsrv/internal/wire"
)

// TestVM boots QEMU guests whose kernel is kdtarget (the /init of an
// initramfs) serving the guest's COM1, and debugs them through QEMU's
// emulated 16550 UART: directly, and through kdsrv and the kdclient bridge.
// One guest per scenario group, reused by the scenarios of the group. The
// unix group (with the figures) runs first and alone; the smaller groups
// then run side by side. Without QEMU or a kernel image the test says so
// and is skipped.
func TestVM(t *testing.T) {
	env := newVMEnv(t)
	t.Run("unix", func(t *testing.T) {
		vmUnixGroup(t, env)
	})
	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		vmTCPGroup(t, env)
	})
	t.Run("console", func(t *testing.T) {
		t.Parallel()
		vmConsoleGroup(t, env)
	})
	t.Run("initfail", func(t *testing.T) {
		t.Parallel()
		vmInitFails(t, env)
	})
}

// The guest's kernel console on the same serial port as the debugger
// (console=ttyS0, as on a machine whose COM1 is both): `kdclient ...
// console` through kdsrv shows the boot from the kernel's first line to
// kdtarget taking the port, and the KD session that follows on the same
// line works. The chardev waits for its first client (wait=on), so the
// console's opening of the target is what starts the guest and no byte is
// lost.
func vmConsoleGroup(t *testing.T, env *vmEnv) {
	dir := shortDir(t)
	h := newHarness(t, harnessOpts{allow: []string{filepath.Join(dir, "vm.sock")}})
	g := env.bootGuest(t, guestOpts{dir: dir, waitOn: true, verbose: true, args: vmArgs})
	ctx := ctxFor(t, vmBootTimeout+30*time.Second)
	k := fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", h.serverSpec(""), g.trans("reconnect"))
	// kdclient ... console: its opening of the target makes kdsrv connect
	// to QEMU's socket, which starts the guest.
	var console, stderr syncBuffer
	ready := make(chan struct{})
	var once sync.Once
	out := writerFunc(func(p []byte) (int, error) {
		console.Write(p)
		if strings.Contains(console.String(), vmReadyLine) {
			once.Do(func() { close(ready) })
		}
		return len(p), nil
	})
	wctx, stopWatch := context.WithCancel(ctx)
	code := make(chan int, 1)
	go func() { code <- kdclientcli.Main(wctx, []string{"-k", k, "console"}, out, &stderr) }()
	defer func() {
		stopWatch()
		if c := <-code; c != 0 && c != 130 {
			t.Errorf("kdclient console exited %d; stderr:\n%s", c, stderr.String())
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatalf("kdtarget never said it serves COM1; kdclient console printed:\n%s\nstderr:\n%s", console.String(), stderr.String())
	}
	text := console.String()
	for _, want := range []string{
		"Linux version ",            // the kernel's first line
		"Run /init as init process", // the kernel starts kdtarget
		"kdtarget: running as init", // kdtarget's first line
		vmReadyLine,
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("kdclient console lacks %q:\n%s", want, text)
		}
	}
	if i, j := strings.Index(text, "Linux version "), strings.Index(text, vmReadyLine); i > j {
		t.Fatalf("boot lines out of order:\n%s", text)
	}
	t.Logf("kdclient console: %d bytes of boot messages before kdtarget took COM1", len(text))
	// The debugger session that follows on the same line.
	s := h.mustOpen(t, g.trans("reconnect"))
	defer s.close()
	vmSuite(t, s)
}

// kdtarget as init that cannot serve (a device that does not exist) says
// why on the console and powers the machine off, instead of exiting and
// leaving the kernel to panic with "Attempted to kill init".
func vmInitFails(t *testing.T, env *vmEnv) {
	g := env.bootGuest(t, guestOpts{dir: shortDir(t), listen: "serial:/dev/kdsrv-none"})
	ctx := ctxFor(t, vmBootTimeout)
	c, err := g.dialSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	out, _ := io.ReadAll(c) // until QEMU exits or the time-out
	text := string(out)
	for _, want := range []string{
		"serial:/dev/kdsrv-none",
		"stopped with exit status 1 while running as init (process 1); powering the machine off",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("console lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Attempted to kill init") {
		t.Fatalf("the kernel panicked:\n%s", text)
	}
	select {
	case <-g.exitedChan():
	case <-ctx.Done():
		t.Fatalf("QEMU still runs: the guest did not power off; console:\n%s", text)
	}
}

// vmBuild is the Windows build the guests' kdtarget reports: it comes from
// the kernel command line, so seeing it proves kdtarget took its
// arguments from there. (17134 is also a build radare2 has a profile for.)
const vmBuild = 17134

const vmArgs = "-build 17134 -dbgprint 100ms"

// bootReady boots a guest and waits until kdtarget serves its serial port.
func bootReady(t *testing.T, env *vmEnv, o guestOpts) (*guest, string) {
	t.Helper()
	g := env.bootGuest(t, o)
	start := time.Now()
	text, err := g.waitReady(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest up: kdtarget serves its COM1 %v after QEMU started", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(text, "kdtarget: running as init") || !strings.Contains(text, `"-build" "17134"`) {
		t.Fatalf("console does not show kdtarget starting as init with the command line's arguments:\n%s", text)
	}
	return g, text
}

// The unix-socket chardev (kdsrv trans=@{com:pipe,port=PATH}): figures
// direct and through kdsrv, a full session through kdsrv and the bridge,
// the built-in commands, a VM reset with reconnect, QEMU killed and
// restarted on the same socket.
func vmUnixGroup(t *testing.T, env *vmEnv) {
	dir := shortDir(t)
	g, _ := bootReady(t, env, guestOpts{dir: dir, args: vmArgs})
	t.Run("figures", func(t *testing.T) {
		vmFiguresRounds(t, g)
	})
	// Every session names the target the same way, with reconnect, as a
	// VM's users should: kdsrv keeps one link per target.
	h := newHarness(t, harnessOpts{allow: []string{g.sock}})
	t.Run("kdsrv", func(t *testing.T) {
		s := h.mustOpen(t, g.trans("reconnect"))
		defer s.close()
		vmSuite(t, s)
	})
	t.Run("commands", func(t *testing.T) {
		vmCommands(t, h, g)
	})
	t.Run("radare2", func(t *testing.T) {
		vmRadare2(t, h, g)
	})
	// One session with reconnect lives through a VM reset and a QEMU
	// restart.
	s := h.mustOpen(t, g.trans("reconnect"))
	defer s.close()
	var states stateLog
	s.Bridge.OnState(states.add)
	t.Run("reset", func(t *testing.T) {
		vmReboot(t, s, &states, func() {
			if out, err := g.monitor("system_reset"); err != nil {
				t.Fatalf("system_reset: %v %s", err, out)
			}
		})
	})
	t.Run("restart", func(t *testing.T) {
		vmReboot(t, s, &states, func() {
			g.kill()
			g.start()
		})
	})
}

// vmFiguresRounds measures the VM path straight on QEMU's socket and
// through kdsrv, alternately, $KDSRV_VM_BENCH rounds (default 1), each
// after a warm-up, and reports them (figures are never asserted). Each
// kdsrv round has its own server, which lets go of the socket at the end
// of the round so the next direct round can have it.
func vmFiguresRounds(t *testing.T, g *guest) {
	rounds, size := 1, 256<<10
	if n, err := strconv.Atoi(os.Getenv("KDSRV_VM_BENCH")); err == nil && n > 0 {
		rounds, size = n, 1<<20
	}
	var best [2]vmFigures
	keep := func(i int, f vmFigures) {
		call := f.call
		if best[i].call != 0 && best[i].call < call {
			call = best[i].call
		}
		if f.dumpKBps > best[i].dumpKBps {
			best[i] = f
		}
		best[i].call = call
	}
	for round := 1; round <= rounds; round++ {
		t.Run(fmt.Sprintf("direct%d", round), func(t *testing.T) {
			hst := g.directHost(t, kd.HostOptions{})
			ctx := ctxFor(t, 90*time.Second)
			sc, err := hst.Attach(ctx)
			if err != nil {
				t.Fatalf("attach on the guest's serial socket: %v", err)
			}
			if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
				t.Fatalf("state change %v", sc)
			}
			checkVersion(t, ctx, hst)
			f := measureVM(t, ctx, g, hst, size)
			keep(0, f)
			t.Logf("VM path, direct (test debugger on QEMU's socket): %s", f)
		})
		t.Run(fmt.Sprintf("kdsrv%d", round), func(t *testing.T) {
			h := newHarness(t, harnessOpts{allow: []string{g.sock}})
			s := h.mustOpen(t, g.trans(""))
			defer s.close()
			hst := s.host(t, kd.HostOptions{})
			ctx := ctxFor(t, 90*time.Second)
			if _, err := hst.Attach(ctx); err != nil {
				t.Fatalf("attach through kdsrv: %v", err)
			}
			f := measureVM(t, ctx, g, hst, size)
			keep(1, f)
			t.Logf("VM path, through kdsrv and the bridge: %s", f)
		})
	}
	if best[0].dumpKBps > 0 && best[1].dumpKBps > 0 {
		t.Logf("VM path, best of %d: direct %s; through kdsrv %s; kdsrv/direct dump throughput %.2f",
			rounds, best[0], best[1], best[1].dumpKBps/best[0].dumpKBps)
	}
}

// stateLog records the target-state notices a session receives.
type stateLog struct {
	mu     sync.Mutex
	states []wire.State
}

func (l *stateLog) add(s wire.State) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
}

// since returns the states recorded after the first n.
func (l *stateLog) since(n int) []wire.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]wire.State(nil), l.states[n:]...)
}

func (l *stateLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.states)
}

// vmReboot checks one reboot of the guest under a live kdsrv session
// opened with reconnect: before, a debugger attaches and leaves a mark in
// memory; reboot() restarts the guest (a monitor system_reset, or QEMU
// killed and started again on the same socket); after, the session is told
// the target came back, and the next debugger attaches to the new boot: the
// mark is gone (fresh memory, the pattern again), and the target answers
// reads, writes and version as before, without restarting kdsrv.
func vmReboot(t *testing.T, s *session, states *stateLog, reboot func()) {
	ctx := ctxFor(t, 3*time.Minute)
	printed := make(chan struct{}, 1)
	h1, stop1 := s.Bridge.Host(ctx, kd.HostOptions{OnPrint: func(uint16, []byte) {
		select {
		case printed <- struct{}{}:
		default:
		}
	}})
	if _, err := h1.Attach(ctx); err != nil {
		stop1()
		t.Fatalf("attach before the reboot: %v", err)
	}
	v1 := checkVersion(t, ctx, h1)
	mark := []byte("written before the reboot")
	addr := sim.DataBase + 0x20000
	if _, err := h1.WriteVirtual(ctx, addr, mark); err != nil {
		stop1()
		t.Fatalf("write: %v", err)
	}
	if err := h1.Continue(ctx); err != nil {
		stop1()
		t.Fatalf("continue: %v", err)
	}
	// The machine runs (its DbgPrint ticks arrive) when it is reset, as a
	// VM usually is.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	go func() {
		select {
		case <-printed:
		case <-wctx.Done():
		}
		cancel()
	}()
	if _, err := h1.WaitStateChange(wctx); !errors.Is(err, context.Canceled) {
		stop1()
		t.Fatalf("waiting for the running target's DbgPrint: %v", err)
	}
	stop1()
	seen := states.len()
	reboot()
	h2, stop2 := s.Bridge.Host(ctx, kd.HostOptions{})
	defer stop2()
	start := time.Now()
	if _, err := h2.Attach(ctx); err != nil {
		t.Fatalf("attach after the reboot: %v; states %v", err, states.since(seen))
	}
	t.Logf("attached to the new boot %v after the reboot", time.Since(start).Round(100*time.Millisecond))
	v2 := checkVersion(t, ctx, h2)
	got, err := h2.ReadVirtual(ctx, addr, len(mark))
	if err != nil {
		t.Fatalf("read after the reboot: %v", err)
	}
	if !bytes.Equal(got, patternBytes(addr, len(mark))) {
		t.Fatalf("after the reboot the memory reads %q; want the fresh pattern (is this the old boot?)", got)
	}
	if _, err := h2.WriteVirtual(ctx, addr, mark); err != nil {
		t.Fatalf("write after the reboot: %v", err)
	}
	if got, err := h2.ReadVirtual(ctx, addr, len(mark)); err != nil || !bytes.Equal(got, mark) {
		t.Fatalf("read back after the reboot %q %v", got, err)
	}
	var told bool
	for _, st := range states.since(seen) {
		told = told || st.State == wire.StateReconnected
	}
	if !told {
		t.Errorf("the session was not told the target came back: states %v", states.since(seen))
	}
	// Like Windows with KASLR, every boot of the strict simulator loads the
	// kernel at a new address (one of 16384 slots: the same one twice is a
	// 1 in 16384 chance per reboot).
	if v2.KernBase == v1.KernBase {
		t.Errorf("KernBase %#x both before and after the reboot; want a new boot's", v1.KernBase)
	}
	t.Logf("KernBase before %#x, after %#x", v1.KernBase, v2.KernBase)
}

// The TCP chardev (kdsrv trans=@{com:ipport=PORT,port=127.0.0.1}).
func vmTCPGroup(t *testing.T, env *vmEnv) {
	h0 := shortDir(t)
	g, _ := bootReady(t, env, guestOpts{dir: h0, tcp: true, args: vmArgs})
	h := newHarness(t, harnessOpts{allow: []string{fmt.Sprintf("127.0.0.1:%d", g.port)}})
	s := h.mustOpen(t, g.trans(""))
	defer s.close()
	vmSuite(t, s)
}

// checkVersion asserts what the guest's kdtarget reports and returns it.
func checkVersion(t *testing.T, ctx context.Context, h *kd.Host) kd.Version {
	t.Helper()
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if v.MinorVersion != vmBuild || v.MachineType != kd.MachineAMD64 || v.KernBase < 0xffff800000000000 {
		t.Fatalf("version %+v; want build %d, x64, a kernel-space KernBase", v, vmBuild)
	}
	return v
}

// vmSuite is the debugger check through a kdsrv session into the guest
// (debugSuite). It returns the debugger, stopped.
func vmSuite(t *testing.T, s *session) *kd.Host {
	t.Helper()
	return debugSuite(t, s, debugChecks{
		attached: func(t *testing.T, sc kd.StateChange) {
			if sc.Exception.ExceptionCode != kd.StatusBreakpoint {
				t.Fatalf("state change %v", sc)
			}
		},
		version: func(t *testing.T, ctx context.Context, h *kd.Host) { checkVersion(t, ctx, h) },
		context: func(t *testing.T, sc kd.StateChange, c kd.ContextX64) {
			if c.Rip != sc.ProgramCounter || c.Rsp == 0 {
				t.Fatalf("context rip %#x rsp %#x; want rip %#x (where it stopped) and a stack", c.Rip, c.Rsp, sc.ProgramCounter)
			}
		},
		write: "kdsrv writes into a QEMU guest",
		reads: 16,
		quiet: 600 * time.Millisecond,
		ticks: true,
	})
}

// vmFigures are the VM path's figures.
type vmFigures struct {
	call     time.Duration // one GET_VERSION round trip
	dumpKBps float64       // a dump in 4 KiB requests
	dumpSize int
	// CPU seconds used per MiB dumped: by QEMU, and by this process (the
	// debugger, and kdsrv and the bridge when they are in the path).
	qemuCPU, selfCPU float64
}

func (f vmFigures) String() string {
	return fmt.Sprintf("%v per call (version), %.0f KB/s dump (%d KiB in 4 KiB reads; CPU per MiB: QEMU %.2fs, debugger+kdsrv %.2fs)",
		f.call.Round(time.Microsecond), f.dumpKBps, f.dumpSize>>10, f.qemuCPU, f.selfCPU)
}

// cpuTimes returns the CPU time QEMU and this process have used so far.
func (g *guest) cpuTimes() (qemu, self time.Duration) {
	g.mu.Lock()
	pid := g.cmd.Process.Pid
	g.mu.Unlock()
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name in parentheses: utime and stime
		// are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 13 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				s, _ := strconv.ParseInt(f[12], 10, 64)
				qemu = time.Duration(u+s) * 10 * time.Millisecond
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return qemu, self
}

// measureVM times calls and a dump of size bytes on an attached, stopped
// debugger and checks the dump against the pattern. Figures are reported,
// never asserted. KDSRV_VM_BENCH=N (rounds) measures 1 MiB dumps.
func measureVM(t *testing.T, ctx context.Context, g *guest, h *kd.Host, size int) vmFigures {
	t.Helper()
	// Warm up: the first requests after a guest boots or a debugger
	// attaches are slower (the guest is still settling).
	for i := range 16 {
		if _, err := h.ReadVirtual(ctx, sim.DataBase+uint64(i)*4096, 4096); err != nil {
			t.Fatalf("warm-up read: %v", err)
		}
	}
	const calls = 40
	start := time.Now()
	for range calls {
		if _, err := h.Version(ctx); err != nil {
			t.Fatalf("version: %v", err)
		}
	}
	f := vmFigures{call: time.Since(start) / calls, dumpSize: size}
	const chunk = 4096
	base := sim.DataBase + 0x200000
	got := make([]byte, 0, size)
	q0, s0 := g.cpuTimes()
	start = time.Now()
	for off := 0; off < size; off += chunk {
		b, err := h.ReadVirtual(ctx, base+uint64(off), chunk)
		if err != nil {
			t.Fatalf("dump at %#x: %v", base+uint64(off), err)
		}
		got = append(got, b...)
	}
	wall := time.Since(start)
	q1, s1 := g.cpuTimes()
	f.dumpKBps = float64(size) / 1000 / wall.Seconds()
	mib := float64(size) / (1 << 20)
	f.qemuCPU, f.selfCPU = (q1-q0).Seconds()/mib, (s1-s0).Seconds()/mib
	if !bytes.Equal(got, patternBytes(base, size)) {
		t.Fatalf("the %d KiB dump is not the simulated memory pattern", size>>10)
	}
	return f
}

// vmRadare2 attaches radare2 (an independent debugger, where it is
// installed) through the kdclient bridge and kdsrv to the guest: it must
// synchronise, show where the target stopped and read the memory pattern.
func vmRadare2(t *testing.T, h *harness, g *guest) {
	r2, err := exec.LookPath("r2")
	if err != nil {
		t.Skip("radare2 (r2) is not installed")
	}
	k := fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", h.serverSpec(""), g.trans("reconnect"))
	sock := filepath.Join(shortDir(t), "r2.sock")
	_, stop := runBridgeMain(t, k, "unix:"+sock)
	defer stop()
	addr := sim.DataBase + 0x5000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r2, "-q", "-e", "scr.color=0", "-c", fmt.Sprintf("dr rip; px 16 @ %#x", addr), "-d", "winkd://"+sock)
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("r2: %v\n%s", err, text)
	}
	if !strings.Contains(text, "Sync done") {
		t.Fatalf("radare2 did not synchronise through the bridge:\n%s", text)
	}
	rip := regexp.MustCompile(`(?m)^0x(fffff8[0-9a-f]{10})$`).FindStringSubmatch(text)
	if rip == nil {
		t.Fatalf("radare2 shows no kernel-space rip:\n%s", text)
	}
	want := hex.EncodeToString(patternBytes(addr, 16))
	line := regexp.MustCompile(fmt.Sprintf(`(?m)^0x%x  ([0-9a-f ]+)  `, addr)).FindStringSubmatch(text)
	if line == nil || strings.ReplaceAll(line[1], " ", "") != want {
		t.Fatalf("radare2 reads %q at %#x; want the pattern %s:\n%s", line, addr, want, text)
	}
	t.Logf("radare2 through the bridge: rip 0x%s, memory matches", rip[1])
}

// writerFunc is an io.Writer made of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// kdclientRun runs one kdclient command line and returns its standard
// output.
func kdclientRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb syncBuffer
	if code := kdclientcli.Main(ctxFor(t, 90*time.Second), args, &out, &errb); code != 0 {
		t.Fatalf("kdclient %q: exit %d; stderr:\n%s", args, code, errb.String())
	}
	return out.String()
}

// vmCommands runs kdclient's built-in commands against the guest through
// kdsrv: version, regs, read, write and read-back, a 1 MiB dump.
func vmCommands(t *testing.T, h *harness, g *guest) {
	k := fmt.Sprintf("kdsrv:server=@{%s},trans=@{%s}", h.serverSpec(""), g.trans("reconnect"))
	var v struct {
		Build    int    `json:"build"`
		Machine  string `json:"machine"`
		KernBase string `json:"kern_base"`
	}
	out := kdclientRun(t, "-k", k, "-json", "version")
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Build != vmBuild || v.Machine != "x64" || !strings.HasPrefix(v.KernBase, "ffff") {
		t.Fatalf("version: %q (%v)", out, err)
	}
	var regs map[string]string
	out = kdclientRun(t, "-k", k, "-json", "regs")
	if err := json.Unmarshal([]byte(out), &regs); err != nil || regs["rip"] == "" || strings.Trim(regs["rsp"], "0") == "" {
		t.Fatalf("regs: %q (%v)", out, err)
	}
	addr := sim.DataBase + 0x3000
	readJSON := func(n int) []byte {
		t.Helper()
		var r struct{ Data string }
		out := kdclientRun(t, "-k", k, "-json", "read", fmt.Sprintf("%#x", addr), fmt.Sprint(n))
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("read: %q (%v)", out, err)
		}
		b, err := hex.DecodeString(r.Data)
		if err != nil {
			t.Fatalf("read: %q (%v)", out, err)
		}
		return b
	}
	if got := readJSON(32); !bytes.Equal(got, patternBytes(addr, 32)) {
		t.Fatalf("read %x; want the pattern %x", got, patternBytes(addr, 32))
	}
	kdclientRun(t, "-k", k, "write", fmt.Sprintf("%#x", addr), "90cc0badf00d")
	if got, want := readJSON(8), append([]byte{0x90, 0xcc, 0x0b, 0xad, 0xf0, 0x0d}, patternBytes(addr+6, 2)...); !bytes.Equal(got, want) {
		t.Fatalf("read after write %x; want %x", got, want)
	}
	file := filepath.Join(t.TempDir(), "dump.bin")
	base := sim.DataBase + 0x400000
	start := time.Now()
	kdclientRun(t, "-k", k, "dump", fmt.Sprintf("%#x", base), fmt.Sprint(1<<20), file)
	t.Logf("kdclient dump of 1 MiB from the guest through kdsrv: %v", time.Since(start).Round(time.Millisecond))
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1<<20 || !bytes.Equal(got, patternBytes(base, 1<<20)) {
		t.Fatalf("dump file: %d bytes, not the pattern", len(got))
	}
}
