package kdtrace

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kd/kdtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeClock returns a time that advances by one millisecond per call.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

// The scripted target's fixed answers.
const (
	scriptPC       = 0xfffff80000401000
	scriptKernBase = 0xfffff80000400000
	scriptBuild    = 18362
)

func scriptStateChange() []byte {
	sc := kdtest.Breakpoint(scriptPC)
	return sc.Append(nil)
}

// runScriptedTarget plays a kernel on l: boot text on the line, a
// breakpoint state change, then answers to GetVersion and memory reads and
// writes, each preceded by a line of console text. It re-sends its state
// change for a break-in or RESET, and answers Continue with console text
// and a DbgPrint.
func runScriptedTarget(ctx context.Context, l *kd.Link) {
	_ = l.WriteRaw([]byte("BOOTMGR: starting Windows\r\n"))
	ver := kd.Version{MinorVersion: scriptBuild, ProtocolVersion: 6, MachineType: 0x8664, KernBase: scriptKernBase}
	kdtest.ServeHalted(ctx, l, scriptStateChange(), func(req kd.Manipulate) (kd.Manipulate, bool) {
		if req.API == kd.APIContinue || req.API == kd.APIContinue2 {
			_ = l.WriteRaw([]byte("running\r\n"))
			p := kd.NewPrintString([]byte("Hello from DbgPrint\n"))
			_ = l.Send(ctx, kd.TypeDebugIO, p.Append(nil))
			return kd.Manipulate{}, false
		}
		_ = l.WriteRaw([]byte("kd: answering " + req.API.String() + "\r\n"))
		return kdtest.Reply(req, ver), true
	})
}

// recvPacket returns the next data packet of type typ.
func recvPacket(t *testing.T, ctx context.Context, l *kd.Link, typ kd.PacketType) kd.Packet {
	t.Helper()
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.Kind == kd.MsgPacket && m.Packet.Type == typ {
			return m.Packet
		}
	}
}

// scriptedSession runs a fixed debugger session against the scripted
// target and traces the host's end (the server-target hop).
func scriptedSession(t *testing.T, f Format) string {
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	tr := New(w, f)
	tr.SetClock(fakeClock())
	a, z := net.Pipe()
	// Generous time-outs: a slow machine must not add retransmissions.
	cfg := kd.Config{AckTimeout: time.Minute, InterByteTimeout: time.Minute}
	cfg.Trace, cfg.Event, cfg.Noise = tr.LinkHooks(HopTarget, true)
	host := kd.NewHostLink(a, cfg)
	target := kd.NewTargetLink(z, kd.Config{AckTimeout: time.Minute, InterByteTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The note goes first: once the target runs, its console text races
	// with anything else written here.
	tr.Note(HopTarget, 0, "link", "target opened (scripted)")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runScriptedTarget(ctx, target)
	}()
	recvPacket(t, ctx, host, kd.TypeStateChange64)
	call := func(m kd.Manipulate) {
		t.Helper()
		if err := host.Send(ctx, kd.TypeStateManipulate, m.Append(nil)); err != nil {
			t.Fatal(err)
		}
		recvPacket(t, ctx, host, kd.TypeStateManipulate)
	}
	call(kd.NewGetVersion())
	call(kd.NewReadVirtual(scriptKernBase+0x1000, 16))
	call(kd.NewWriteVirtual(scriptKernBase+0x2000, []byte{0x90, 0xcc}))
	if err := host.SendReset(); err != nil {
		t.Fatal(err)
	}
	recvPacket(t, ctx, host, kd.TypeStateChange64)
	if err := host.Send(ctx, kd.TypeStateManipulate, func() []byte { m := kd.NewContinue(0x10001); return m.Append(nil) }()); err != nil {
		t.Fatal(err)
	}
	recvPacket(t, ctx, host, kd.TypeDebugIO)
	if err := host.SendBreakIn(); err != nil {
		t.Fatal(err)
	}
	recvPacket(t, ctx, host, kd.TypeStateChange64)
	host.Close()
	target.Close()
	<-done
	tr.Note(HopTarget, 0, "link", "target closed")
	mu.Lock()
	defer mu.Unlock()
	return out.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestGoldenSession compares the decoded trace of a scripted session with
// testdata/session.{txt,jsonl}: packets with API names, status, addresses
// and sizes, state-change reasons, console text, RESET and break-in.
func TestGoldenSession(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		file string
	}{{Text, "session.txt"}, {JSON, "session.jsonl"}} {
		t.Run(tc.file, func(t *testing.T) {
			got := scriptedSession(t, tc.f)
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("trace differs from %s (go test -run TestGoldenSession -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
			}
			if tc.f == JSON {
				for i, line := range strings.Split(strings.TrimSpace(got), "\n") {
					var r map[string]any
					if err := json.Unmarshal([]byte(line), &r); err != nil {
						t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
					}
					for _, k := range []string{"time", "hop", "event"} {
						if _, ok := r[k]; !ok {
							t.Errorf("line %d has no %q: %s", i+1, k, line)
						}
					}
				}
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Text, "text": Text, "JSON": JSON, "json": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Errorf("ParseFormat(yaml) error %v", err)
	}
}

func TestNilTracerIsSafe(t *testing.T) {
	var tr *Tracer
	tr.Packet(HopServer, ToTarget, kd.Packet{Type: kd.TypeStateManipulate}, false)
	tr.Note(HopServer, ToHost, "state", "x")
	tr.Console(HopTarget, ToHost, []byte("x"))
	tr.Event(HopTarget, true, kd.Event{Kind: kd.EventBreakIn})
	if a, b, c := tr.LinkHooks(HopTarget, true); a != nil || b != nil || c != nil {
		t.Error("a nil tracer's hooks are not nil")
	}
	if tr.Err() != nil {
		t.Error("nil tracer has an error")
	}
}

func TestOpenDestination(t *testing.T) {
	var stderr bytes.Buffer
	w, closeFn, err := Open("-", &stderr)
	if err != nil || w != &stderr {
		t.Fatalf("Open(-) = %v, %v", w, err)
	}
	_ = closeFn()
	path := filepath.Join(t.TempDir(), "trace.log")
	w, closeFn, err = Open(path, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(w, Text)
	tr.Note(HopTarget, 0, "link", "hello")
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `server-target link text="hello"`) {
		t.Errorf("trace file holds %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("trace file mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "t"), &stderr); err == nil || !strings.Contains(err.Error(), "-trace") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

// FuzzDescribe: decoding any packet for a trace never panics, and the
// formatted line is one line.
func FuzzDescribe(f *testing.F) {
	f.Add(uint16(kd.TypeStateManipulate), func() []byte { m := kd.NewReadVirtual(0x1000, 16); return m.Append(nil) }())
	f.Add(uint16(kd.TypeStateChange64), scriptStateChange())
	f.Add(uint16(kd.TypeDebugIO), func() []byte { p := kd.NewPrintString([]byte("hi\n")); return p.Append(nil) }())
	f.Add(uint16(kd.TypeFileIO), []byte{0x30, 0x34, 0, 0})
	f.Add(uint16(kd.TypeReset), []byte(nil))
	f.Fuzz(func(t *testing.T, typ uint16, payload []byte) {
		r := Describe(kd.Packet{Type: kd.PacketType(typ), Payload: payload})
		r.Hop = HopTarget.String()
		line := appendText(nil, r)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one line: %q", line)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
