package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) {
	// goleak.Cleanup replaces goleak's own os.Exit: exit here.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testkit.CleanupPrograms()
		os.Exit(code)
	}))
}

func TestParseArgs(t *testing.T) {
	good := []struct {
		args []string
		want func(*options) bool
	}{
		{[]string{"-listen", "unix:/tmp/x.sock"}, func(o *options) bool {
			c := o.config()
			return o.network == "unix" && o.address == "/tmp/x.sock" && c.Build == 18362 && c.Processors == 1 && c.DataSize == 16<<20 && !c.StartHalted
		}},
		{[]string{"-listen", "pty", "-halted", "-cpus", "4", "-build", "22631", "-sp", "2"}, func(o *options) bool {
			c := o.config()
			return o.network == "pty" && c.StartHalted && c.Processors == 4 && c.Build == 22631 && c.ServicePack == 2
		}},
		{[]string{"-connect", "tcp:127.0.0.1:5555", "-dbgprint", "1s", "-data-size", "64K", "-v"}, func(o *options) bool {
			c := o.config()
			return o.connect != "" && o.address == "127.0.0.1:5555" && c.PrintEvery == time.Second && c.DataSize == 64<<10 && o.log.Verbose
		}},
		{[]string{"-listen", "tcp:[::1]:0", "-data-size", "4096"}, func(o *options) bool { return o.dataSize == 4096 }},
		{[]string{"-listen", "tcp:[::1]:0", "-data-size", "1GiB"}, func(o *options) bool { return o.dataSize == 1<<30 }},
		{[]string{"-listen", "serial:/dev/ttyS0,baud=921600"}, func(o *options) bool {
			return o.network == sim.NetworkSerial && o.address == "/dev/ttyS0,baud=921600"
		}},
	}
	for _, c := range good {
		o, err := parseArgs(c.args)
		if err != nil || !c.want(o) {
			t.Errorf("parseArgs(%q) = %+v, %v", c.args, o, err)
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{nil, "-listen"},
		{[]string{"-listen", "pty", "-connect", "tcp:h:1"}, "exclude"},
		{[]string{"-connect", "pty"}, "cannot be dialled"},
		{[]string{"-connect", "serial:/dev/ttyS0"}, "not dialled"},
		{[]string{"-listen", "serial:/dev/ttyS0,baud=x"}, "not a rate"},
		{[]string{"-listen", "udp:1.2.3.4:5"}, "unknown kind"},
		{[]string{"-listen", "pty", "extra"}, "unexpected argument"},
		{[]string{"-listen", "pty", "-cpus", "0"}, "-cpus"},
		{[]string{"-listen", "pty", "-cpus", "65"}, "-cpus"},
		{[]string{"-listen", "pty", "-build", "70000"}, "-build"},
		{[]string{"-listen", "pty", "-build", "0"}, "-build"},
		{[]string{"-listen", "pty", "-sp", "256"}, "-sp"},
		{[]string{"-listen", "pty", "-dbgprint", "-1s"}, "negative"},
		{[]string{"-listen", "pty", "-data-size", "0"}, "not a size"},
		{[]string{"-listen", "pty", "-data-size", "2T"}, "not a size"},
		{[]string{"-listen", "pty", "-data-size", "lots"}, "not a size"},
		{[]string{"-listen", "pty", "-nosuchflag"}, "nosuchflag"},
	}
	for _, c := range bad {
		_, err := parseArgs(c.args)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseArgs(%q) error %v; want a usage error containing %q", c.args, err, c.want)
		}
	}
	if _, err := parseArgs([]string{"-h"}); !errors.Is(err, errHelp) {
		t.Errorf("-h: %v; want errHelp", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "r2 -d winkd://", ""},
		{[]string{"-help"}, 0, "Simulated memory", ""},
		{[]string{"-listen", "bogus"}, 2, "", "kdtarget -h"},
		{[]string{}, 2, "", "-listen"},
		{[]string{"-listen", "unix:/" + strings.Repeat("x", 300)}, 1, "", "longer than"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code := run(ctx, c.args, &out, &errb)
		cancel()
		if code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d with %q / %q",
				c.args, code, trim(out.String()), errb.String(), c.code, c.stdout, c.stderr)
		}
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// firstLine matches the first line of an output.
var firstLine = regexp.MustCompile(`^(.*)\n`)

// startTarget runs the kdtarget program listening on a unix socket (with
// more flags) and waits for its ready line; it returns the process and the
// socket's path.
func startTarget(t *testing.T, flags ...string) (*testkit.Proc, string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("kdtarget is signalled here, and cannot be on Windows")
	}
	sock := filepath.Join(testkit.ShortDir(t), "kd.sock")
	p := testkit.Start(t, exec.Command(testkit.Program(t, "kdtarget"), append([]string{"-listen", "unix:" + sock}, flags...)...))
	if l, want := p.Expect(t, firstLine)[1], "kdtarget: listening on unix:"+sock; l != want {
		t.Fatalf("ready line %q; want %q", l, want)
	}
	return p, sock
}

// attach connects a debugger to kdtarget's socket and attaches it; the
// link closes when the test ends.
func attach(t *testing.T, ctx context.Context, sock string) (*kd.Host, *kd.Link) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := kd.NewHostLink(conn, kd.Config{})
	t.Cleanup(func() { l.Close() })
	h := kd.NewHost(l, kd.HostOptions{AttachInterval: 200 * time.Millisecond})
	if _, err := h.Attach(ctx); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return h, l
}

func TestCommandServesAndStopsOnSIGTERM(t *testing.T) {
	p, sock := startTarget(t, "-build", "22000", "-halted", "-v")
	ctx := testkit.Context(t, 30*time.Second)
	h, l := attach(t, ctx, sock)
	v, err := h.Version(ctx)
	if err != nil || v.MinorVersion != 22000 || v.KernBase == 0 || v.KernBase%0x200000 != 0 {
		t.Fatalf("version %+v, %v; want build 22000 at a 2 MiB aligned KernBase", v, err)
	}
	got, err := h.ReadVirtual(ctx, sim.DataBase, 16)
	if err != nil || len(got) != 16 || got[5] != sim.Pattern(sim.DataBase+5) {
		t.Fatalf("read data region: % x, %v", got, err)
	}
	l.Close()

	if code := p.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("after SIGTERM: exit %d; want 0; stderr: %s", code, p.Stderr)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after exit: %v", err)
	}
	if !strings.Contains(p.Stderr.String(), "debugger connected") {
		t.Errorf("-v did not log the connection; stderr: %s", p.Stderr)
	}
}

func TestCommandBadFlagExitCode(t *testing.T) {
	bin := testkit.Program(t, "kdtarget")
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0},
		{[]string{"-listen"}, 2},
		{[]string{"-listen", "pty", "-cpus", "100"}, 2},
		{[]string{"-connect", "tcp:127.0.0.1:0"}, 1},
	} {
		stdout, stderr, code := testkit.Run(t, bin, c.args...)
		if code != c.code {
			t.Errorf("kdtarget %q exited %d; want %d; output: %s%s", c.args, code, c.code, stdout, stderr)
		}
	}
}

// SIGHUP reboots the machine: the connected debugger sees a new boot (the
// sync bit, a new KernBase), and kdtarget says where the kernel went.
func TestCommandRebootsOnSIGHUP(t *testing.T) {
	p, sock := startTarget(t)
	ctx := testkit.Context(t, 30*time.Second)
	h, _ := attach(t, ctx, sock)
	before, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	m, err := p.Match(p.Stderr, regexp.MustCompile(`(?m)^kdtarget: boot 2: kernel at .*$`), 1)
	if err != nil {
		t.Fatal(err)
	}
	line := m[0][0]
	// A debugger attaches again after a reboot (break-in and RESET).
	if _, err := h.Attach(ctx); err != nil {
		t.Fatalf("attach after the reboot: %v", err)
	}
	after, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.KernBase == before.KernBase || line != fmt.Sprintf("kdtarget: boot 2: kernel at %#x", after.KernBase) {
		t.Fatalf("KernBase %#x before, %#x after the reboot; kdtarget said %q", before.KernBase, after.KernBase, line)
	}
}

// TestVersion: -version and --version name the program and its version
// and exit 0, without an endpoint.
func TestVersion(t *testing.T) {
	for _, flag := range []string{"-version", "--version"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{flag}, &out, &errb)
		if code != 0 || !strings.HasPrefix(out.String(), "kdtarget ") || !strings.Contains(out.String(), runtime.GOOS+"/"+runtime.GOARCH) || errb.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", flag, code, out.String(), errb.String())
		}
	}
}
