//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/initramfs"
	"kdsrv/internal/kd"
)

// The VM harness: QEMU (TCG, no KVM needed) boots a Linux kernel whose
// /init is kdtarget serving the guest's COM1 (/dev/ttyS0); the host reaches
// that serial port through QEMU's socket character device, as users of a
// VM do. docs/setups.md gives the same recipe for people.

const (
	// vmHardTimeout ends a guest whatever the test is doing.
	vmHardTimeout = 4 * time.Minute
	// vmBootTimeout bounds waiting for kdtarget to come up in a guest.
	vmBootTimeout = 90 * time.Second
	// vmReadyLine is what kdtarget prints on the guest console once it
	// serves the serial port.
	vmReadyLine = "kdtarget: listening on serial:/dev/ttyS0"
)

// vmEnv is what every guest boots: QEMU, a kernel and an initramfs with
// kdtarget as /init.
type vmEnv struct {
	qemu, kernel, initrd string
}

// newVMEnv finds QEMU and a kernel (or skips the test saying what is
// missing) and builds the initramfs.
func newVMEnv(t *testing.T) *vmEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("VM tests skipped with -short (each boots a QEMU guest)")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("VM tests skipped: qemu-system-x86_64 is not installed (Debian/Ubuntu: apt-get install qemu-system-x86)")
	}
	kernel, why := findKernel()
	if kernel == "" {
		t.Skip("VM tests skipped: " + why)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kdtarget")
	// go test puts its own go command first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("VM tests build kdtarget for the guest and need the go command on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "kdsrv/cmd/kdtarget")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a static kdtarget for the guest: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if err := initramfs.Kdtarget(&img, prog, true); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "kdtarget.cpio.gz")
	if err := os.WriteFile(initrd, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &vmEnv{qemu: qemu, kernel: kernel, initrd: initrd}
}

// findKernel returns the x86-64 kernel image to boot: $KDSRV_VM_KERNEL, or
// the newest readable /boot/vmlinuz-* on an x86-64 machine. It says why
// when there is none.
func findKernel() (path, why string) {
	if k := os.Getenv("KDSRV_VM_KERNEL"); k != "" {
		if f, err := os.Open(k); err != nil {
			return "", fmt.Sprintf("KDSRV_VM_KERNEL=%s cannot be read: %v", k, err)
		} else {
			f.Close()
		}
		return k, ""
	}
	if runtime.GOARCH != "amd64" {
		return "", "this machine's kernels are not x86-64; set KDSRV_VM_KERNEL to an x86-64 bzImage"
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Sort(sort.Reverse(sort.StringSlice(ks)))
	for _, k := range ks {
		if f, err := os.Open(k); err == nil {
			f.Close()
			return k, ""
		}
	}
	if len(ks) > 0 {
		return "", fmt.Sprintf("%s is not readable by this user (chmod 0644 it, or set KDSRV_VM_KERNEL to a readable copy)", ks[0])
	}
	return "", "no kernel image in /boot (Debian: apt-get install linux-image-cloud-amd64; or set KDSRV_VM_KERNEL)"
}

// guestOpts says how a guest is booted.
type guestOpts struct {
	dir     string // for the sockets: DIR/vm.sock (serial) and DIR/mon.qemu
	tcp     bool   // serial on a TCP chardev server on 127.0.0.1 instead of DIR/vm.sock
	waitOn  bool   // the serial chardev holds the guest until its first client (unix only)
	listen  string // kdtarget's -listen (default serial:/dev/ttyS0)
	args    string // more kdtarget arguments
	verbose bool   // the kernel prints its boot messages (no "quiet")
}

// guest is one QEMU process.
type guest struct {
	t   testing.TB
	env *vmEnv
	o   guestOpts

	sock string // serial socket path (unix)
	mon  string // monitor socket path
	port int    // serial TCP port (tcp)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	hard   *time.Timer
	out    *syncBuffer
}

// bootGuest starts QEMU; the guest is killed when the test ends.
func (e *vmEnv) bootGuest(t testing.TB, o guestOpts) *guest {
	t.Helper()
	g := &guest{t: t, env: e, o: o, out: &syncBuffer{},
		sock: filepath.Join(o.dir, "vm.sock"), mon: filepath.Join(o.dir, "mon.qemu")}
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("QEMU output:\n%s", g.out)
		}
	})
	g.start()
	return g
}

// cmdline is the kernel command line: console on COM1 (boot messages and
// kdtarget's own lines reach the serial port before kdtarget takes it),
// then kdtarget's arguments after "--".
func (g *guest) cmdline() string {
	s := "console=ttyS0"
	if !g.o.verbose {
		s += " quiet"
	}
	listen := g.o.listen
	if listen == "" {
		listen = "serial:/dev/ttyS0"
	}
	return s + " -- -listen " + listen + " " + g.o.args
}

// start runs QEMU (again, after kill: on the same sockets and port).
func (g *guest) start() {
	g.t.Helper()
	wait := "off"
	if g.o.waitOn {
		wait = "on"
	}
	chardev := "socket,id=com1,path=" + g.sock + ",server=on,wait=" + wait
	if g.o.tcp {
		chardev = fmt.Sprintf("socket,id=com1,host=127.0.0.1,port=%d,server=on,wait=off", g.port)
	}
	os.Remove(g.mon)
	args := []string{
		"-accel", "tcg", "-m", "256M", "-smp", "1",
		"-nographic", "-nodefaults", "-no-user-config",
		"-kernel", g.env.kernel, "-initrd", g.env.initrd, "-append", g.cmdline(),
		"-chardev", chardev, "-serial", "chardev:com1",
		"-monitor", "unix:" + g.mon + ",server=on,wait=off",
	}
	cmd := exec.Command(g.env.qemu, args...)
	cmd.Stdout, cmd.Stderr = g.out, g.out
	// Its own process group, killed as a whole; and killed with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		g.t.Fatalf("starting QEMU: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	g.mu.Lock()
	g.cmd, g.exited = cmd, exited
	g.hard = time.AfterFunc(vmHardTimeout, func() {
		g.out.Write([]byte("\n[harness: hard time-out, killing QEMU]\n"))
		g.kill()
	})
	g.mu.Unlock()
	if g.o.tcp && g.port == 0 {
		// QEMU picked the port: ask its monitor.
		info, err := g.monitor("info chardev")
		if err != nil {
			g.t.Fatalf("QEMU monitor: %v", err)
		}
		m := regexp.MustCompile(`com1: filename=\S*tcp:127\.0\.0\.1:(\d+)`).FindStringSubmatch(info)
		if m == nil {
			g.t.Fatalf("no TCP port for com1 in 'info chardev':\n%s", info)
		}
		g.port, _ = strconv.Atoi(m[1])
	}
}

// kill ends QEMU (its whole process group) and waits for it.
func (g *guest) kill() {
	g.mu.Lock()
	cmd, exited, hard := g.cmd, g.exited, g.hard
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	if hard != nil {
		hard.Stop()
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// running reports whether QEMU is still running.
func (g *guest) running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// exitedChan is closed when the current QEMU process has exited.
func (g *guest) exitedChan() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.exited
}

// trans is the kdsrv trans=@{...} for the guest's serial port.
func (g *guest) trans(extra string) string {
	s := "com:pipe,port=" + g.sock
	if g.o.tcp {
		s = fmt.Sprintf("com:ipport=%d,port=127.0.0.1", g.port)
	}
	if extra != "" {
		s += "," + extra
	}
	return s
}

// dialSerial connects to the guest's serial port, retrying until QEMU has
// created it (bounded by ctx).
func (g *guest) dialSerial(ctx context.Context) (net.Conn, error) {
	network, addr := "unix", g.sock
	if g.o.tcp {
		network, addr = "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port))
	}
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			return c, nil
		}
		if !g.running() {
			return nil, fmt.Errorf("QEMU exited: %s", g.out)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("serial port %s:%s: %w (last error %v)", network, addr, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReady connects to the serial port, reads the console until kdtarget
// says it serves the port, and disconnects. It returns the console text.
func (g *guest) waitReady(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, vmBootTimeout)
	defer cancel()
	c, err := g.dialSerial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var text strings.Builder
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		text.WriteString(line)
		if strings.Contains(line, vmReadyLine) && strings.HasSuffix(line, "\n") {
			return text.String(), nil
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return text.String(), fmt.Errorf("waiting for %q on the guest console: %w; console so far:\n%s", vmReadyLine, err, text.String())
		}
	}
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// monitor runs one command on the QEMU (human) monitor and returns its
// output.
func (g *guest) monitor(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var c net.Conn
	for {
		var d net.Dialer
		var err error
		if c, err = d.DialContext(ctx, "unix", g.mon); err == nil {
			break
		}
		if !g.running() {
			return "", fmt.Errorf("QEMU exited: %s", g.out)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("monitor %s: %w", g.mon, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	r := bufio.NewReader(c)
	readPrompt := func() (string, error) {
		var b strings.Builder
		for !strings.HasSuffix(b.String(), "(qemu) ") {
			ch, err := r.ReadByte()
			if err != nil {
				return b.String(), fmt.Errorf("monitor %s: %w after %q", g.mon, err, b.String())
			}
			b.WriteByte(ch)
		}
		return b.String(), nil
	}
	if _, err := readPrompt(); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "", err
	}
	out, err := readPrompt()
	if err != nil {
		return "", err
	}
	out = ansiEscape.ReplaceAllString(strings.TrimSuffix(out, "(qemu) "), "")
	// The first line is the monitor echoing the command.
	if _, rest, ok := strings.Cut(out, "\n"); ok {
		out = rest
	}
	return strings.ReplaceAll(out, "\r", ""), nil
}

// directHost attaches the project's test debugger straight to the guest's
// serial socket (no kdsrv).
func (g *guest) directHost(t *testing.T, opts kd.HostOptions) *kd.Host {
	t.Helper()
	c, err := g.dialSerial(ctxFor(t, 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, c, opts)
	return h
}
