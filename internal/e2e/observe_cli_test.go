package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"kdsrv/internal/testkit"
)

var metricsLine = regexp.MustCompile(`(?m)^kdsrv: metrics on (http://\S+/metrics)$`)

// TestObservabilityProcesses runs kdtarget (printing console text between
// packets), kdsrv -metrics -trace, a kdclient -listen bridge with -trace,
// a debugger on the bridge and a kdclient console watcher, as processes:
// both traces hold the decoded GetVersion, state change and
// ReadVirtualMemory packets, /metrics parses as Prometheus text with
// packets > 0, and the watcher shows the target's text while the debugger
// works.
func TestObservabilityProcesses(t *testing.T) {
	srvTrace := filepath.Join(t.TempDir(), "kdsrv.trace")
	st := startStack(t, []string{"-console", `BOOT: kdtarget banner\r\n`, "-console-every", "100ms"}, nil,
		"-metrics", "127.0.0.1:0", "-trace", srvTrace)
	m := metricsLine.FindStringSubmatch(st.server.Stdout.String())
	if m == nil {
		t.Fatalf("kdsrv printed no metrics line: %s", st.server.Stdout)
	}
	metricsURL := m[1]

	bridgeTrace := filepath.Join(t.TempDir(), "bridge.trace")
	sock := filepath.Join(st.dir, "bridge.sock")
	bridge := startBg(t, nil, regexp.MustCompile(`kdclient: bridge ready`), st.kdclient, "-k", st.k, "-listen", "unix:"+sock, "-trace", bridgeTrace)

	h, closeLink := dialHost(t, sock)
	ctx := ctxFor(t, 60*time.Second)
	if _, err := h.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := h.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.MinorVersion != 18362 {
		t.Errorf("kdtarget's default build is %d, want 18362 (radare2 5.9 knows no later x64 build)", v.MinorVersion)
	}

	// A watcher joins while the debugger session is open.
	watcher := startBg(t, nil, nil, st.kdclient, "-k", st.k, "console")
	for i := range 5 {
		if _, err := h.ReadVirtual(ctx, v.KernBase, 16); err != nil {
			t.Fatalf("read %d with a watcher on the target: %v", i, err)
		}
	}
	testkit.WaitFor(t, "the watcher shows the banner and console lines", func() bool {
		out := watcher.Stdout.String()
		return strings.Contains(out, "BOOT: kdtarget banner\r\n") && strings.Contains(out, "kdtarget: console line ")
	})
	if _, err := h.ReadVirtual(ctx, v.KernBase, 16); err != nil {
		t.Fatalf("read after the watcher saw text: %v", err)
	}

	// Metrics during the session.
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s is not Prometheus text: %v", metricsURL, err)
	}
	var packets float64
	for _, mm := range fams["kdsrv_kd_packets_total"].GetMetric() {
		packets += mm.GetCounter().GetValue()
	}
	if packets == 0 {
		t.Error("kdsrv_kd_packets_total is 0 during a session")
	}
	if fams["kdsrv_sessions_active"].GetMetric()[0].GetGauge().GetValue() < 2 {
		t.Errorf("kdsrv_sessions_active %v, want the bridge and the watcher", fams["kdsrv_sessions_active"])
	}
	if _, ok := fams["kdsrv_auth_failures_total"]; !ok {
		t.Error("no kdsrv_auth_failures_total series")
	}

	closeLink()
	watcher.Signal(syscall.SIGINT)
	if code := watcher.Wait(t); code != 0 {
		t.Errorf("kdclient console exited %d on SIGINT; stderr: %s", code, watcher.Stderr)
	}
	bridge.Signal(syscall.SIGINT)
	bridge.Wait(t)
	st.server.Signal(syscall.SIGTERM)
	if code := st.server.Wait(t); code != 0 {
		t.Errorf("kdsrv exited %d", code)
	}
	read := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, want := range map[string][]string{
		srvTrace: {
			"server-target server->target packet STATE_MANIPULATE id=0x8080", "api=GetVersion",
			"server-target target->server packet STATE_CHANGE64 id=0x8080",
			"api=ReadVirtualMemory cpu=0 addr=",
			"server-target target->server console len=", `text="BOOT: kdtarget banner\r\n"`,
			"bridge-server bridge->server packet STATE_MANIPULATE len=56 api=GetVersion",
		},
		bridgeTrace: {
			"bridge-server server->bridge packet STATE_CHANGE64 len=240",
			"debugger-bridge debugger->bridge packet STATE_MANIPULATE id=0x8080", "api=GetVersion",
			"debugger-bridge bridge->debugger packet STATE_MANIPULATE id=0x8080",
			"api=ReadVirtualMemory cpu=0 status=0x00000000 addr=",
			"debugger-bridge debugger->bridge break-in",
		},
	} {
		got := read(name)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s has no %q:\n%s", filepath.Base(name), w, got)
			}
		}
	}
	if bytes.Contains([]byte(read(srvTrace)), []byte("password")) {
		t.Error("the trace mentions a password")
	}
}
