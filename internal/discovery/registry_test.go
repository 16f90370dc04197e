package discovery

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// startSleeper starts a child process that lives until killed, and makes
// sure it is killed and reaped when the test ends.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("uses sleep(1)")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestRegistryListAndUnregister(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: filepath.Join(t.TempDir(), "servers")}
	child := startSleeper(t)

	un1, err := reg.Register(Server{Transports: []string{"tcp:Port=53:60"}})
	if err != nil {
		t.Fatal(err)
	}
	un2, err := reg.Register(Server{PID: child.Process.Pid, Transports: []string{"npipe:Pipe=KernelPipe,Password=*", "com:Port=COM2,Baud=115200,Channel=0"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{PID: os.Getpid(), Transports: []string{"tcp:Port=53:60"}},
		{PID: child.Process.Pid, Transports: []string{"npipe:Pipe=KernelPipe,Password=*", "com:Port=COM2,Baud=115200,Channel=0"}},
	}
	if want[0].PID > want[1].PID {
		want[0], want[1] = want[1], want[0]
	}
	got, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("List (-want +got):\n%s", d)
	}

	fi, err := os.Stat(filepath.Join(reg.Dir, strconv.Itoa(os.Getpid())+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("entry mode = %v, want 0644", fi.Mode().Perm())
	}
	if di, err := os.Stat(reg.Dir); err == nil && runtime.GOOS != "windows" && di.Mode().Perm() != 0o755 {
		t.Errorf("directory mode = %v, want 0755", di.Mode().Perm())
	}

	if err := un1(); err != nil {
		t.Fatal(err)
	}
	if err := un1(); err != nil {
		t.Fatalf("second unregister: %v", err)
	}
	if err := un2(); err != nil {
		t.Fatal(err)
	}
	listsNone(t, reg, "after unregister")
	left, _ := os.ReadDir(reg.Dir)
	if len(left) != 0 {
		t.Fatalf("files left in registry: %v", left)
	}
}

func TestRegistryDeadServerPruned(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	child := startSleeper(t)
	pid := child.Process.Pid
	if _, err := reg.Register(Server{PID: pid, Transports: []string{"tcp:Port=5000"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.List(); len(got) != 1 {
		t.Fatalf("live server not listed: %v", got)
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL: no chance to unregister
		t.Fatal(err)
	}
	_ = child.Wait()
	listsNone(t, reg, "a dead server")
	if _, err := os.Stat(filepath.Join(reg.Dir, strconv.Itoa(pid)+".json")); !os.IsNotExist(err) {
		t.Fatalf("dead server's entry not pruned (stat err %v)", err)
	}
}

func TestRegistryPIDReuse(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("start times are compared on Linux only")
	}
	reg := &Registry{Dir: t.TempDir()}
	pid := os.Getpid()
	// An entry for our pid, written by a process that started at another time.
	data, _ := json.Marshal(entry{Version: registryVersion, PID: pid, Start: "1", Transports: []string{"tcp:Port=1"}})
	name := filepath.Join(reg.Dir, strconv.Itoa(pid)+".json")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	listsNone(t, reg, "the entry of a reused pid")
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("reused-pid entry not pruned (stat err %v)", err)
	}
}

func TestRegistryIgnoresJunk(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	pid := strconv.Itoa(os.Getpid())
	files := map[string]string{
		"notes.txt":        "hello",
		".tmp-1.json-123":  "{}",
		pid + ".json":      "{not json",
		"0.json":           "{}",
		"99999999999.json": "{}",
		"12a.json":         "{}",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(reg.Dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	listsNone(t, reg, "junk")
	// The undecodable entry of a live process is kept (not ours to judge).
	if _, err := os.Stat(filepath.Join(reg.Dir, pid+".json")); err != nil {
		t.Fatalf("live process's entry removed: %v", err)
	}
}

func TestRegistryMissingDir(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: filepath.Join(t.TempDir(), "absent")}
	got, err := reg.List()
	if err != nil || len(got) != 0 {
		t.Fatalf("List of a missing dir = %v, %v; want none, nil", got, err)
	}
}

func TestRegisterRejects(t *testing.T) {
	t.Parallel()
	reg := &Registry{Dir: t.TempDir()}
	long := make([]byte, MaxLineLen+1)
	for i := range long {
		long[i] = 'a'
	}
	many := make([]string, MaxTransports+1)
	for i := range many {
		many[i] = "tcp:Port=1"
	}
	tests := []struct {
		name string
		s    Server
	}{
		{"no transports", Server{}},
		{"empty line", Server{Transports: []string{""}}},
		{"newline", Server{Transports: []string{"tcp:Port=1\nfake"}}},
		{"too long", Server{Transports: []string{string(long)}}},
		{"too many", Server{Transports: many}},
		{"negative pid", Server{PID: -2, Transports: []string{"tcp:Port=1"}}},
		{"dead pid", Server{PID: 1 << 30, Transports: []string{"tcp:Port=1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := reg.Register(tc.s); err == nil {
				t.Fatal("Register succeeded, want an error")
			}
		})
	}
	if left, _ := os.ReadDir(reg.Dir); len(left) != 0 {
		t.Fatalf("rejected registrations left files: %v", left)
	}
}

// listsNone checks that reg lists no server; what names the case.
func listsNone(t *testing.T, reg *Registry, what string) {
	t.Helper()
	got, err := reg.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("%s: List = %v, want none", what, got)
	}
}
