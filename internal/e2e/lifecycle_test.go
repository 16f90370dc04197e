package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
	"kdsrv/internal/wire"
)

// The link lifecycle matrix (issue 13): a simulated machine as strict as a
// Windows kernel (every sim.Machine: KD state kept across connections,
// RESET ignored while running, new KernBase per boot) behind a kdsrv
// process that is restarted, killed, and left alone while the target
// reboots or its pipe drops. Every row checks data, through the bridge (a
// KDCOM debugger on the client's local endpoint) and through kdclient's
// built-in commands (the kdclient program): the version with the boot's
// KernBase, the registers, memory written and read back.

// lcBins are the programs the matrix runs, built once.
type lcBins struct{ kdsrv, kdclient string }

// lcMachine is one strict simulated machine on a unix socket, the way a
// VM exposes its serial port; it can be unplugged (the pipe drops, the
// machine keeps its state) and replaced (the VM process restarts: a new
// boot).
type lcMachine struct {
	t    *testing.T
	sock string
	cfg  sim.Config

	mu     sync.Mutex
	tgt    *sim.Machine
	cancel context.CancelFunc
	done   chan error
}

func newMachine(t *testing.T, sock string, cfg sim.Config) *lcMachine {
	m := &lcMachine{t: t, sock: sock, cfg: cfg}
	m.tgt = sim.New(cfg)
	m.plug()
	t.Cleanup(m.unplug)
	return m
}

// plug serves the machine on its socket.
func (m *lcMachine) plug() {
	m.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	tgt := m.target()
	go func() {
		done <- sim.Listen(ctx, tgt, sim.NetworkUnix, m.sock, sim.PortOptions{Ready: func(string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		m.t.Fatalf("simulated machine on %s: %v", m.sock, err)
	}
	m.mu.Lock()
	m.cancel, m.done = cancel, done
	m.mu.Unlock()
}

// unplug closes the machine's socket and its connection (the pipe drops).
func (m *lcMachine) unplug() {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.cancel, m.done = nil, nil
	m.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if err := <-done; err != nil {
		m.t.Errorf("simulated machine: %v", err)
	}
}

// restart replaces the machine's process: the pipe drops and a new boot,
// with its kernel at kernBase, comes up on the same socket.
func (m *lcMachine) restart(kernBase uint64) {
	m.unplug()
	cfg := m.cfg
	cfg.KernBase = kernBase
	m.mu.Lock()
	m.tgt = sim.New(cfg)
	m.mu.Unlock()
	m.plug()
}

func (m *lcMachine) target() *sim.Machine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tgt
}

// lcRig is a machine and a kdsrv process in front of it.
type lcRig struct {
	t         *testing.T
	bins      lcBins
	dir       string
	m         *lcMachine
	port      int
	reconnect bool
	srv       *bgProc
	srvLogs   []*syncBuffer // stderr of every kdsrv run
}

func newRig(t *testing.T, bins lcBins, cfg sim.Config, reconnect bool) *lcRig {
	t.Helper()
	dir := shortDir(t)
	r := &lcRig{t: t, bins: bins, dir: dir, port: testkit.FreeTCPPort(t), reconnect: reconnect}
	r.m = newMachine(t, filepath.Join(dir, "vm.sock"), cfg)
	r.startServer()
	return r
}

func (r *lcRig) startServer() {
	r.t.Helper()
	r.srv = startBg(r.t, nil, serverReady, r.bins.kdsrv, "-v", "-bind", "127.0.0.1", "-qr-port", "0", "-no-mdns",
		"-allow", filepath.Join(r.dir, "*.sock"), "-t", fmt.Sprintf("tcp:port=%d", r.port))
	r.srvLogs = append(r.srvLogs, r.srv.Stderr)
}

// stopServer ends kdsrv with sig (SIGKILL: no goodbye to the target).
func (r *lcRig) stopServer(sig syscall.Signal) {
	r.t.Helper()
	r.srv.Signal(sig)
	r.srv.Wait(r.t)
}

func (r *lcRig) restartServer(sig syscall.Signal) {
	r.t.Helper()
	r.stopServer(sig)
	r.startServer()
}

func (r *lcRig) serverLog() string {
	var b strings.Builder
	for _, l := range r.srvLogs {
		b.WriteString(l.String())
	}
	return b.String()
}

func (r *lcRig) trans() string {
	s := "com:pipe,port=" + r.m.sock
	if r.reconnect {
		s += ",reconnect"
	}
	return s
}

func (r *lcRig) k() string {
	return fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{%s}", r.port, r.trans())
}

// cli runs kdclient -json with args and decodes its output into v.
func (r *lcRig) cli(v any, args ...string) {
	r.t.Helper()
	out, errOut, code := runClient(r.t, os.Environ(), append([]string{r.bins.kdclient, "-k", r.k(), "-json"}, args...)...)
	if code != 0 {
		r.t.Fatalf("kdclient %s: exit %d\n%s\nkdsrv log:\n%s", strings.Join(args, " "), code, errOut, r.serverLog())
	}
	if v != nil {
		// DbgPrint lines of a running target come first, one object each;
		// the command's answer is the last line.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
			r.t.Fatalf("kdclient %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
}

// checkCLI checks the target through kdclient's built-in commands: the
// version of the current boot, the registers of the stop, a write read
// back (and, if want is set, bytes an earlier session left there).
func (r *lcRig) checkCLI(tag string, want []byte) {
	r.t.Helper()
	tgt := r.m.target()
	lo := tgt.Layout()
	var v struct {
		Build    int    `json:"build"`
		KernBase string `json:"kern_base"`
	}
	r.cli(&v, "version")
	if v.KernBase != fmt.Sprintf("%016x", lo.KernBase) || v.Build != int(tgt.Config().Build) {
		r.t.Fatalf("%s: kdclient version: KernBase %s build %d; the machine's boot %d has %#x, build %d", tag, v.KernBase, v.Build, tgt.Boot(), lo.KernBase, tgt.Config().Build)
	}
	var regs map[string]string
	r.cli(&regs, "regs")
	if rip, err := strconv.ParseUint(regs["rip"], 16, 64); err != nil || rip != tgt.Context(0).Rip || rip != lo.BreakAddress {
		r.t.Fatalf("%s: kdclient regs: rip %q; the machine stopped at %#x", tag, regs["rip"], lo.BreakAddress)
	}
	addr := sim.DataBase + 0x40000
	if want != nil {
		r.readBack(tag, addr, want)
	}
	data := []byte("cli " + tag)
	r.cli(nil, "write", fmt.Sprintf("%x", addr), hex.EncodeToString(data))
	r.readBack(tag, addr, data)
}

func (r *lcRig) readBack(tag string, addr uint64, want []byte) {
	r.t.Helper()
	var rd struct {
		Data string `json:"data"`
	}
	r.cli(&rd, "read", fmt.Sprintf("%x", addr), strconv.Itoa(len(want)))
	if got, _ := hex.DecodeString(rd.Data); !bytes.Equal(got, want) {
		r.t.Fatalf("%s: kdclient read at %#x: %q, want %q", tag, addr, got, want)
	}
}

// lcSession is a bridge session with a KDCOM debugger on it.
type lcSession struct {
	s *session
	h *kd.Host
}

// openBridge connects a client to kdsrv and starts its bridge.
func (r *lcRig) openBridge() *lcSession {
	r.t.Helper()
	s, err := openSession(r.t, fmt.Sprintf("tcp:server=127.0.0.1,port=%d", r.port), r.trans())
	if err != nil {
		r.t.Fatalf("open: %v\nkdsrv log:\n%s", err, r.serverLog())
	}
	return &lcSession{s: s, h: s.host(r.t, kd.HostOptions{})}
}

// bridgeSession is one debugger session of n requests through the bridge:
// attach, the version and registers of the current boot, memory written
// and read back (and bytes an earlier session left, if want is set). It
// ends with the target halted, or running if resume; the session detaches.
func (r *lcRig) bridgeSession(tag string, n int, resume bool, want []byte) {
	r.t.Helper()
	ls := r.openBridge()
	defer ls.s.close()
	ctx := ctxFor(r.t, 30*time.Second)
	h := ls.h
	tgt := r.m.target()
	lo := tgt.Layout()
	sc, err := h.Attach(ctx)
	if err != nil {
		r.t.Fatalf("%s: attach through the bridge: %v\nkdsrv log:\n%s", tag, err, r.serverLog())
	}
	if sc.ProgramCounter != lo.BreakAddress {
		r.t.Fatalf("%s: stopped at %#x; the machine's boot %d stops at %#x", tag, sc.ProgramCounter, tgt.Boot(), lo.BreakAddress)
	}
	addr := sim.DataBase + 0x80000
	if want != nil {
		if got, err := h.ReadVirtual(ctx, sim.DataBase+0x40000, len(want)); err != nil || !bytes.Equal(got, want) {
			r.t.Fatalf("%s: read %q %v; want %q", tag, got, err, want)
		}
	}
	for i := range n {
		switch i % 3 {
		case 0:
			v, err := h.Version(ctx)
			if err != nil || v.KernBase != lo.KernBase || v.PsLoadedModuleList != lo.PsLoadedModuleList {
				r.t.Fatalf("%s: request %d: version %+v %v; the boot's KernBase is %#x", tag, i, v, err, lo.KernBase)
			}
		case 1:
			c, err := h.Context(ctx, 0)
			if want := tgt.Context(0); err != nil || c.Rip != want.Rip || c.Rax != want.Rax || c.Rsp != want.Rsp {
				r.t.Fatalf("%s: request %d: context rip %#x rax %#x %v; want %#x %#x", tag, i, c.Rip, c.Rax, err, want.Rip, want.Rax)
			}
		case 2:
			data := fmt.Appendf(nil, "%s request %d", tag, i)
			if n, err := h.WriteVirtual(ctx, addr, data); err != nil || n != len(data) {
				r.t.Fatalf("%s: request %d: write %d %v", tag, i, n, err)
			}
			if got, err := h.ReadVirtual(ctx, addr, len(data)); err != nil || !bytes.Equal(got, data) {
				r.t.Fatalf("%s: request %d: read back %q %v", tag, i, got, err)
			}
		}
	}
	if resume {
		if err := h.Continue(ctx); err != nil {
			r.t.Fatalf("%s: continue: %v", tag, err)
		}
		waitUntilE(r.t, func() bool { return !tgt.Halted() }, tag+": the machine runs")
	}
}

// openSession is harness.open without a harness: a client connected to
// serverSpec with the target trans opened and a bridge running.
func openSession(t *testing.T, serverSpec, trans string) (*session, error) {
	h := &harness{t: t}
	return h.open(serverSpec, trans, client.Options{Logger: slog.New(slog.DiscardHandler)})
}

// waitUntilE waits up to 15 s until cond holds.
func waitUntilE(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testkit.WaitWithin(t, 15*time.Second, what, cond)
}

func TestLifecycleMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs kdsrv and kdclient")
	}
	_, kdsrvBin, kdclientBin := tools(t)
	bins := lcBins{kdsrv: kdsrvBin, kdclient: kdclientBin}

	t.Run("fresh target", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, false)
		r.bridgeSession("bridge", 3, false, nil)
		r.checkCLI("fresh", nil)
	})

	// Sessions of odd and even lengths leave the machine's ids at either
	// parity; a new kdsrv must find them whichever they are.
	for _, n := range []int{3, 4} {
		t.Run(fmt.Sprintf("halted after a session of %d requests, kdsrv restarted", n), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, bins, sim.Config{}, false)
			r.bridgeSession("first", n, false, nil)
			r.checkCLI("same kdsrv", nil)
			r.restartServer(syscall.SIGTERM)
			r.checkCLI("new kdsrv", []byte("cli same kdsrv"))
			r.bridgeSession("bridge after restart", n+1, false, []byte("cli new kdsrv"))
		})
	}

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(fmt.Sprintf("target left running, kdsrv %v", sig), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, bins, sim.Config{}, false)
			r.bridgeSession("first", 2, true, nil)
			r.restartServer(sig)
			r.checkCLI("after restart", nil)
			r.bridgeSession("bridge", 2, true, []byte("cli after restart"))
			r.restartServer(sig)
			r.bridgeSession("bridge after second restart", 5, false, []byte("cli after restart"))
		})
		t.Run(fmt.Sprintf("target halted, kdsrv %v", sig), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, bins, sim.Config{StartHalted: true}, false)
			r.checkCLI("first kdsrv", nil)
			resets := r.m.target().Stats().Link.ResetsReceived
			r.restartServer(sig)
			r.bridgeSession("bridge", 3, false, []byte("cli first kdsrv"))
			r.checkCLI("second kdsrv", nil)
			// The new server resynchronised the halted machine with RESET.
			if got := r.m.target().Stats().Link.ResetsReceived; got <= resets {
				t.Fatalf("the halted machine received %d RESETs, %d before the restart", got, resets)
			}
		})
	}

	t.Run("six kdsrv restarts with sessions of varied lengths", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, false)
		var want []byte
		for i := range 6 {
			tag := fmt.Sprintf("run %d", i+1)
			if i%2 == 0 {
				r.bridgeSession(tag, i+1, i%4 == 2, nil)
			} else {
				r.checkCLI(tag, want)
				want = []byte("cli " + tag)
			}
			sig := syscall.SIGKILL
			if i%3 == 1 {
				sig = syscall.SIGTERM
			}
			r.restartServer(sig)
		}
		r.checkCLI("after six restarts", want)
		if b := r.m.target().Boot(); b != 1 {
			t.Fatalf("the machine rebooted (boot %d)", b)
		}
	})

	t.Run("client killed mid-call", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, false)
		ls := r.openBridge()
		ctx := ctxFor(t, 30*time.Second)
		if _, err := ls.h.Attach(ctx); err != nil {
			t.Fatal(err)
		}
		reading := make(chan struct{})
		stopped := make(chan struct{})
		go func() { // ends when the connection is killed
			defer close(stopped)
			for i := 0; ; i++ {
				if _, err := ls.h.ReadVirtual(ctx, sim.DataBase+uint64(i%64)*4096, 4096); err != nil {
					return
				}
				if i == 10 {
					close(reading)
				}
			}
		}()
		<-reading
		ls.s.kill()
		<-stopped
		r.checkCLI("next client", nil)
		r.bridgeSession("bridge", 4, false, []byte("cli next client"))
	})

	t.Run("target process restarted", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{KernBase: 0xfffff80400000000}, false)
		r.bridgeSession("first boot", 3, false, nil)
		r.m.restart(0xfffff80600000000)
		r.checkCLI("second boot", nil)
		r.bridgeSession("bridge", 3, false, []byte("cli second boot"))
	})

	t.Run("target process restarted under reconnect", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{KernBase: 0xfffff80400000000}, true)
		r.checkCLI("first boot", nil)
		r.bridgeSession("bridge", 2, true, []byte("cli first boot"))
		r.m.restart(0xfffff80600000000)
		r.checkCLI("second boot", nil)
		if !strings.Contains(r.serverLog(), "rebooted") {
			t.Fatalf("kdsrv did not log that the target rebooted:\n%s", r.serverLog())
		}
		r.bridgeSession("bridge after the reboot", 3, false, []byte("cli second boot"))
		if len(r.srvLogs) != 1 {
			t.Fatal("kdsrv was restarted")
		}
	})

	t.Run("target rebooted in place under reconnect", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, true)
		r.checkCLI("first boot", nil)
		old := r.m.target().Layout().KernBase
		r.m.target().Reboot() // the machine resets; its pipe stays open
		r.checkCLI("second boot", nil)
		if r.m.target().Layout().KernBase == old {
			t.Fatal("the reboot kept the kernel base")
		}
		r.bridgeSession("bridge", 3, false, []byte("cli second boot"))
	})

	t.Run("target reboots while a command is in flight", func(t *testing.T) {
		// The reboot lands between commands, or anywhere in one: before kdsrv hears of
		// it the client may already have sent a request for the old boot
		// (which the rebooted, running kernel never acknowledges), and
		// the new boot's first packet carries the same sync id as the
		// last boot's did. Every command must still get its answer.
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, true)
		r.checkCLI("first boot", nil)
		for i := range 12 {
			tgt := r.m.target()
			old := tgt.Layout().KernBase
			rebooted := make(chan uint64, 1)
			reboot := func() {
				time.Sleep(time.Duration(i*3) * time.Millisecond)
				tgt.Reboot()
				rebooted <- tgt.Layout().KernBase
			}
			if i < 3 {
				// Between commands. Each boot's first packet has the same
				// sync id, and a version command in between (the stop and
				// one reply) brings the ids back to where they were after
				// the last reboot's first packet.
				reboot()
			} else {
				go reboot() // during the command
			}
			var v struct {
				KernBase string `json:"kern_base"`
			}
			r.cli(&v, "version")
			now := <-rebooted
			if i < 3 && v.KernBase != fmt.Sprintf("%016x", now) {
				t.Fatalf("reboot %d: kdclient version: KernBase %s; the new boot has %#x", i+1, v.KernBase, now)
			}
			if v.KernBase != fmt.Sprintf("%016x", old) && v.KernBase != fmt.Sprintf("%016x", now) {
				t.Fatalf("reboot %d: kdclient version: KernBase %s; the boot before had %#x, the boot after %#x", i+1, v.KernBase, old, now)
			}
		}
		r.checkCLI("after the reboots", nil)
	})

	t.Run("pipe dropped and restored without a reboot under reconnect", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{}, true)
		r.bridgeSession("before", 3, false, nil)
		r.checkCLI("before the drop", nil)
		for i := range 2 {
			r.m.unplug()
			r.m.plug()
			tag := fmt.Sprintf("after drop %d", i+1)
			r.checkCLI(tag, []byte("cli before the drop"))
			r.bridgeSession("bridge "+tag, 3+i, false, []byte("cli "+tag))
			r.cli(nil, "write", fmt.Sprintf("%x", sim.DataBase+0x40000), hex.EncodeToString([]byte("cli before the drop")))
		}
		if b := r.m.target().Boot(); b != 1 {
			t.Fatalf("boot %d: the machine rebooted", b)
		}
	})

	t.Run("break-in storm", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{PrintEvery: 20 * time.Millisecond}, false)
		s, err := openSession(t, fmt.Sprintf("tcp:server=127.0.0.1,port=%d", r.port), r.trans())
		if err != nil {
			t.Fatal(err)
		}
		bsock := filepath.Join(r.dir, "bridge.sock")
		ln, err := net.Listen("unix", bsock)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		detached := make(chan struct{}, 4)
		logger := slog.New(signalHandler{msg: "debugger detached", c: detached})
		go func() { served <- s.Bridge.Listen(ctx, ln, logger) }()
		stopBridge := sync.OnceFunc(func() {
			cancel()
			<-served
			s.close()
		})
		defer stopBridge()
		c, err := net.Dial("unix", bsock)
		if err != nil {
			t.Fatal(err)
		}
		// 500 break-ins with RESETs among them, in bursts, from a debugger
		// that does not wait for anything.
		storm := []byte{}
		for i := range 500 {
			storm = append(storm, kd.BreakInByte)
			if i%50 == 0 {
				storm = kd.AppendControl(storm, kd.TypeReset, 0)
			}
		}
		go io.Copy(io.Discard, c) // ends when c is closed
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < len(storm); i += 64 {
			if _, err := c.Write(storm[i:min(i+64, len(storm))]); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		<-detached
		// A real debugger after the storm, through the same bridge.
		h, closeLink := dialHost(t, bsock)
		tctx := ctxFor(t, 30*time.Second)
		if _, err := h.Attach(tctx); err != nil {
			t.Fatalf("attach after the storm: %v\nkdsrv log:\n%s", err, r.serverLog())
		}
		lo := r.m.target().Layout()
		if v, err := h.Version(tctx); err != nil || v.KernBase != lo.KernBase {
			t.Fatalf("version after the storm: %+v %v", v, err)
		}
		data := []byte("after the storm")
		if _, err := h.WriteVirtual(tctx, sim.DataBase, data); err != nil {
			t.Fatal(err)
		}
		if got, err := h.ReadVirtual(tctx, sim.DataBase, len(data)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q %v", got, err)
		}
		if err := h.Continue(tctx); err != nil {
			t.Fatal(err)
		}
		closeLink()
		stopBridge()
		r.checkCLI("after the storm", nil)
	})

	t.Run("type-0 packet from a client", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, bins, sim.Config{StartHalted: true}, false)
		c, err := spec.ParseConnect(r.k())
		if err != nil {
			t.Fatal(err)
		}
		// The server refuses it, naming the type, and keeps the session.
		notices := make(chan wire.Notice, 1)
		onNotice := func(n wire.Notice) {
			select {
			case notices <- n:
			default:
			}
		}
		ctx := ctxFor(t, 30*time.Second)
		cs, err := client.OpenSession(ctx, c, client.Options{Logger: slog.New(slog.DiscardHandler), OnNotice: onNotice}, client.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		if err := cs.Conn.Wire().SendKD(uint16(kd.TypeUnused), make([]byte, kd.ManipulateSize)); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-notices:
			if !strings.Contains(strings.ToLower(n.Text), "type") {
				t.Fatalf("the notice does not name the packet type: %+v\nkdsrv log:\n%s", n, r.serverLog())
			}
		case <-cs.Done():
			t.Fatalf("no notice for the type-0 packet: the session ended (%v)\nkdsrv log:\n%s", cs.Err(), r.serverLog())
		case <-time.After(10 * time.Second):
			t.Fatalf("no notice within 10s for the type-0 packet\nkdsrv log:\n%s", r.serverLog())
		}
		cs.Close()
		r.checkCLI("next client", nil)
		r.bridgeSession("bridge", 3, false, []byte("cli next client"))
	})
}

// KDNET rows: the target reboots (a new session, a new KernBase), and a
// poke replayed from the target's previous boot reaches a kdsrv that was
// just restarted.
func TestLifecycleKDNET(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs kdsrv and kdclient")
	}
	_, kdsrvBin, kdclientBin := tools(t)
	bins := lcBins{kdsrv: kdsrvBin, kdclient: kdclientBin}
	key, err := kdnet.ParseKey(netKey)
	if err != nil {
		t.Fatal(err)
	}
	kport := testkit.FreeUDPPort(t)
	tgt := sim.New(sim.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- sim.ServeKDNET(ctx, tgt, kdnet.TargetConfig{
			Config:       kdnet.Config{Key: key},
			Host:         fmt.Sprintf("127.0.0.1:%d", kport),
			Local:        "127.0.0.1:0",
			PokeInterval: 200 * time.Millisecond,
		}, sim.PortOptions{})
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	r := &lcRig{t: t, bins: bins, dir: shortDir(t), port: testkit.FreeTCPPort(t)}
	r.m = &lcMachine{t: t, tgt: tgt}
	start := func() {
		r.srv = startBg(t, nil, serverReady, r.bins.kdsrv, "-v", "-bind", "127.0.0.1", "-qr-port", "0", "-no-mdns",
			"-allow", "net:*", "-t", fmt.Sprintf("tcp:port=%d", r.port))
		r.srvLogs = append(r.srvLogs, r.srv.Stderr)
	}
	start()
	// The key travels in the environment, over loopback tcp.
	k := fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=%d},trans=@{net:port=%d}", r.port, kport)
	env := append(os.Environ(), "KDSRV_KDNET_KEY="+netKey)
	version := func(tag string) {
		t.Helper()
		out, errOut, code := runClient(t, env, r.bins.kdclient, "-insecure-send-kdnet-key", "-k", k, "-json", "version")
		var v struct {
			KernBase string `json:"kern_base"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
			t.Fatalf("%s: kdclient version: exit %d %q %s\nkdsrv log:\n%s", tag, code, out, errOut, r.serverLog())
		}
		if want := fmt.Sprintf("%016x", tgt.Layout().KernBase); v.KernBase != want {
			t.Fatalf("%s: KernBase %s; the machine's boot %d has %s", tag, v.KernBase, tgt.Boot(), want)
		}
	}
	version("first boot")

	// The target reboots; kdsrv keeps running. A KDNET host learns of a
	// reboot from the new boot's poke (kdsrv first makes sure the old
	// session's target is gone), so a command started right after the
	// reboot sends its request to the old session: kdsrv drops it when the
	// new session starts (the link does not carry it into the new
	// session, where its id would make the next request look like a
	// repeat), the bridge breaks in, and kdclient sends the request again
	// as soon as the new boot's stop comes. Every command gets the new
	// boot's answer, whenever in the window it starts.
	for i := range 3 {
		tgt.Reboot()
		time.Sleep(time.Duration(i) * 300 * time.Millisecond)
		version(fmt.Sprintf("boot %d", i+2))
	}
	if n := strings.Count(r.serverLog(), "target rebooted"); n != 3 {
		t.Fatalf("kdsrv logged %d reboots, want 3\nkdsrv log:\n%s", n, r.serverLog())
	}

	// kdsrv restarts; a poke from the previous boot (another client
	// random, authentic under the key) arrives with the first client.
	r.stopServer(syscall.SIGKILL)
	start()
	ctl, err := kdnet.NewSealer(key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var oldRandom [32]byte
	copy(oldRandom[:], "a poke from the previous boot...")
	poke, err := ctl.Seal(nil, kdnet.Datagram{Version: kdnet.DatagramVersion, Channel: kdnet.ChannelControl, Seq: 7, Payload: kdnet.BuildPoke(oldRandom, 0)})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	stopReplay := make(chan struct{})
	replayed := make(chan struct{})
	go func() { // replays until told to stop
		defer close(replayed)
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: kport}
		for {
			rp.WriteToUDP(poke, to)
			select {
			case <-stopReplay:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	version("after the kdsrv restart, with replays")
	version("again, with replays")
	close(stopReplay)
	<-replayed
	ls := r.openBridgeK(fmt.Sprintf("net:port=%d,key=%s", kport, netKey))
	bctx := ctxFor(t, 30*time.Second)
	if _, err := ls.h.Attach(bctx); err != nil {
		t.Fatal(err)
	}
	if v, err := ls.h.Version(bctx); err != nil || v.KernBase != tgt.Layout().KernBase {
		t.Fatalf("bridge version %+v %v; boot %d at %#x", v, err, tgt.Boot(), tgt.Layout().KernBase)
	}
	data := []byte("kdnet lifecycle")
	if _, err := ls.h.WriteVirtual(bctx, sim.DataBase, data); err != nil {
		t.Fatal(err)
	}
	if got, err := ls.h.ReadVirtual(bctx, sim.DataBase, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q %v", got, err)
	}
	ls.s.close()
}

// openBridgeK is openBridge for another trans.
func (r *lcRig) openBridgeK(trans string) *lcSession {
	r.t.Helper()
	s, err := openSession(r.t, fmt.Sprintf("tcp:server=127.0.0.1,port=%d", r.port), trans)
	if err != nil {
		r.t.Fatalf("open: %v\nkdsrv log:\n%s", err, r.serverLog())
	}
	return &lcSession{s: s, h: s.host(r.t, kd.HostOptions{})}
}

// signalHandler is a slog.Handler that signals c for each record whose
// message is msg, and drops everything else.
type signalHandler struct {
	msg string
	c   chan<- struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.c <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }
