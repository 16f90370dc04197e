package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// sessionFuzzTarget is the one target the fuzzed server may open; every
// other trans= is refused by the allow-list, so the set of target links
// (and their goroutines) cannot grow from one input to the next.
const sessionFuzzTarget = "com:pipe,port=/kdsim/fz"

// fuzzServer is a kdsrv on loopback TCP whose only allowed target is an
// in-memory pipe to one simulated target.
type fuzzServer struct {
	srv   *Server
	sim   *sim.Machine
	addr  string
	trgt  *spec.Target
	logs  *syncBuffer
	trace *syncBuffer // the KD packets on every hop, for a failure's report
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		s.b.Reset() // keep the tail only
	}
	return s.b.Write(p)
}

func (s *syncBuffer) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	// A strict simulated kernel, as on every other test: it keeps its
	// ids and run state from one session to the next, as a real one
	// does, so whatever a hostile session leaves behind, the next client
	// meets.
	fs := &fuzzServer{sim: sim.New(sim.Config{}), logs: &syncBuffer{}, trace: &syncBuffer{}}
	ts := startTestServer(tb, testServerOptions{
		allow: []string{"/kdsim/fz"},
		target: func(*spec.Target) (func(context.Context, net.Conn), error) {
			return func(ctx context.Context, c net.Conn) { _ = fs.sim.Serve(ctx, c) }, nil
		},
		config: func(cfg *Config) {
			cfg.KeepAlive = -1
			cfg.TargetTimeout = time.Second
			cfg.Logger = slog.New(slog.NewTextHandler(fs.logs, nil)) // its tail only: fuzzing runs long
			cfg.Trace = kdtrace.New(fs.trace, kdtrace.Text)
		},
	})
	fs.srv = ts.Server
	fs.addr = ts.Addrs()[0].String()
	c, err := spec.ParseConnect(fmt.Sprintf("kdsrv:server=@{tcp:server=127.0.0.1,port=1},trans=@{%s}", sessionFuzzTarget))
	if err != nil {
		tb.Fatal(err)
	}
	fs.trgt = c.Trans
	return fs
}

// dial connects and completes the handshake (no password, no pings).
func (fs *fuzzServer) dial(ctx context.Context) (*wire.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", fs.addr)
	if err != nil {
		return nil, err
	}
	wc, err := wire.Client(ctx, nc, wire.Config{KeepAlive: -1, HandshakeTimeout: 5 * time.Second, Software: "fuzz"})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return wc, nil
}

// checkUsable is the next, well-behaved client: it opens the target
// (taking it over if the hostile session still holds it), stops it, and
// reads memory, which must match the simulated target's. It returns a
// description of what went wrong, or "".
func (fs *fuzzServer) checkUsable() string {
	// Well under the fuzzing engine's 10 s per input, so that a wedged
	// target is reported as this failure, not as a hung worker.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wc, err := fs.dial(ctx)
	if err != nil {
		return "next client could not connect: " + err.Error()
	}
	defer wc.Close()
	stop := context.AfterFunc(ctx, func() { wc.NetConn().Close() })
	defer stop()
	if err := wc.Send(wire.TypeOpen, wire.EncodeOpen(wire.Open{Target: fs.trgt.Canonical(), TakeOver: true})); err != nil {
		return "next client: " + err.Error()
	}
	if err := wc.Send(wire.TypeBreakIn, nil); err != nil {
		return "next client: " + err.Error()
	}
	// Wait for the target's state change (the target stops, or was
	// stopped already and its state is repeated after Opened), then read.
	addr := sim.DataBase + 0x2000
	req := kd.NewReadVirtual(addr, 64)
	sentRead := false
	for {
		f, err := wc.Recv()
		if err != nil {
			return fmt.Sprintf("next client (read sent: %v): %v", sentRead, err)
		}
		switch f.Type {
		case wire.TypeError:
			e, _ := wire.DecodeError(f.Payload)
			return fmt.Sprintf("next client refused: %v", e)
		case wire.TypeKD:
		default:
			continue
		}
		pt, payload, err := wire.DecodeKD(f.Payload)
		if err != nil {
			return "next client got a bad KD frame: " + err.Error()
		}
		switch kd.PacketType(pt) {
		case kd.TypeStateChange64:
			if !sentRead {
				sentRead = true
				if err := wc.SendKD(uint16(kd.TypeStateManipulate), req.Append(nil)); err != nil {
					return "next client: " + err.Error()
				}
			}
		case kd.TypeStateManipulate:
			rep, err := kd.DecodeManipulate(payload)
			if err != nil {
				return "next client got a bad reply: " + err.Error()
			}
			if !kd.Matches(req, rep) {
				continue // a late reply to the hostile client's request
			}
			want := make([]byte, 64)
			fs.sim.Memory().Read(addr, want)
			if !bytes.Equal(rep.Extra, want) {
				return fmt.Sprintf("next client read %x, the target holds %x", rep.Extra, want)
			}
			_ = wc.Send(wire.TypeDetach, nil)
			return ""
		}
	}
}

// settle waits (bounded) until the server has no client left and the
// process is back to at most limit goroutines; it returns the count.
func (fs *fuzzServer) settle(limit int) (clients, goroutines int) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		clients, goroutines = fs.srv.Stats().Clients, runtime.NumGoroutine()
		if clients == 0 && goroutines <= limit || time.Now().After(deadline) {
			return clients, goroutines
		}
		time.Sleep(time.Millisecond)
	}
}

// Session program encoding for FuzzServerSession: records of a frame type
// byte, a big-endian 16-bit length and that many payload bytes (cut to what
// is left), each written to the server as one wire frame; type 0xFF writes
// the payload as raw bytes instead (garbage between frames). The hostile
// client reads everything the server sends meanwhile.
func sessionProgram(frames ...any) []byte {
	var b []byte
	for i := 0; i < len(frames); i += 2 {
		t := frames[i].(wire.Type)
		p := frames[i+1].([]byte)
		b = append(b, byte(t))
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

const rawBytes wire.Type = 0xFF

// FuzzServerSession feeds a server session a hostile frame sequence after
// a valid handshake, then has a well-behaved client use the same target.
// The server must not panic, must end the hostile session (or keep it) without
// leaking goroutines, and must leave the target usable: the next client
// opens it, stops it and reads memory that matches the target's.
func FuzzServerSession(f *testing.F) {
	open := wire.EncodeOpen(wire.Open{Target: "com:pipe,port=/kdsim/fz"})
	kdFrame := func(t kd.PacketType, payload []byte) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(t)), payload...)
	}
	rv := kd.NewReadVirtual(sim.DataBase, 32)
	read := kdFrame(kd.TypeStateManipulate, rv.Append(nil))
	setopt := wire.EncodeControl(wire.Control{ID: 7, Command: wire.CmdSetOption, Body: []byte("readahead=on")})
	f.Add(sessionProgram(wire.TypeOpen, open, wire.TypeBreakIn, []byte{}, wire.TypeKD, read))
	f.Add(sessionProgram(wire.TypeOpen, open, wire.TypeKD, read, wire.TypeDetach, []byte{}, wire.TypeOpen, open, wire.TypeReset, []byte{}))
	f.Add(sessionProgram(wire.TypeKD, read, wire.TypeOpen, open))
	f.Add(sessionProgram(wire.TypeOpen, open, wire.TypeOpen, open))
	f.Add(sessionProgram(wire.TypeOpen, open, wire.TypeControl, setopt, wire.TypeKD, read, wire.TypeKD, read, rawBytes, []byte("garbage")))
	f.Add(sessionProgram(wire.TypeOpen, wire.EncodeOpen(wire.Open{Target: "com:pipe,port=/etc/passwd"})))
	f.Add(sessionProgram(wire.TypeOpen, open, wire.TypeKD, kdFrame(kd.TypeStateManipulate, []byte{1, 2, 3}), wire.TypeKD, kdFrame(kd.PacketType(0x7777), nil)))
	f.Add(sessionProgram(wire.TypeControl, wire.EncodeControl(wire.Control{ID: 1, Command: wire.CmdShutdown}), wire.TypePing, make([]byte, 8)))
	f.Add(sessionProgram(wire.TypeHello, []byte("again"), wire.TypeOpened, []byte{0, 0, 0, 1, 0, 0}))

	fs := newFuzzServer(f)
	// A first good session opens the target link, which stays up (with
	// its goroutines) for the rest of the run.
	if msg := fs.checkUsable(); msg != "" {
		f.Fatalf("%s\nserver log:\n%s", msg, fs.logs.tail())
	}
	_, base := fs.settle(1 << 30)
	const slack = 16

	f.Fuzz(func(t *testing.T, prog []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		wc, err := fs.dial(ctx)
		if err != nil {
			t.Fatalf("hostile client could not connect: %v", err)
		}
		nc := wc.NetConn()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for {
				if _, err := wc.Recv(); err != nil {
					return
				}
			}
		}()
		var frames []string
		for len(prog) >= 3 {
			typ := wire.Type(prog[0])
			n := min(int(binary.BigEndian.Uint16(prog[1:3])), len(prog)-3)
			payload := prog[3 : 3+n]
			prog = prog[3+n:]
			var b []byte
			if typ == rawBytes {
				b = payload
			} else {
				b = wire.AppendFrame(nil, typ, payload)
			}
			frames = append(frames, fmt.Sprintf("%s(%d)", typ, n))
			_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := nc.Write(b); err != nil {
				break // the server ended the session: fine
			}
		}
		wc.Close()
		<-drained

		if msg := fs.checkUsable(); msg != "" {
			t.Fatalf("after the hostile frames %s: %s\nserver log (tail):\n%s\nKD trace (tail):\n%s", strings.Join(frames, " "), msg, fs.logs.tail(), fs.trace.tail())
		}
		if clients, n := fs.settle(base + slack); clients != 0 || n > base+slack {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("after the hostile frames %s: %d clients still connected, %d goroutines (%d at start)\n%s", strings.Join(frames, " "), clients, n, base, buf)
		}
	})
}
