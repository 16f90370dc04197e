package sim

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/testkit"
)

// kdnetHost is a minimal debugger on a KDNET host endpoint: break in, ask
// for the version, resume.
func kdnetVersion(ctx context.Context, t *testing.T, h *kdnet.Link) kd.Version {
	t.Helper()
	if err := h.SendBreakIn(); err != nil {
		t.Fatal(err)
	}
	next := func() kd.Packet {
		for {
			m, err := h.Recv(ctx)
			if err != nil {
				t.Fatalf("host: %v", err)
			}
			if m.Kind == kd.MsgPacket {
				return m.Packet
			}
		}
	}
	for p := next(); p.Type != kd.TypeStateChange64; p = next() {
	}
	req := kd.NewGetVersion()
	if err := h.Send(ctx, kd.TypeStateManipulate, req.Append(nil)); err != nil {
		t.Fatal(err)
	}
	for {
		p := next()
		if p.Type != kd.TypeStateManipulate {
			continue
		}
		m, err := kd.DecodeManipulate(p.Payload)
		if err != nil || m.API != kd.APIGetVersion {
			t.Fatalf("reply %v %v", m, err)
		}
		v, err := kd.DecodeVersion(m.U[:])
		if err != nil {
			t.Fatal(err)
		}
		c := kd.NewContinue2(kd.Continue2Args{ContinueStatus: kd.DbgContinue})
		if err := h.Send(ctx, kd.TypeStateManipulate, c.Append(nil)); err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestServeKDNET: the simulated kernel serves a KDNET host, and a host that
// restarts on the same port finds it again.
func TestServeKDNET(t *testing.T) {
	key, err := kdnet.ParseKey("1.2.3.4")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listen := func(addr string) *kdnet.Link {
		h, err := kdnet.ListenHost(ctx, kdnet.HostConfig{Config: kdnet.Config{Key: key, AckTimeout: 50 * time.Millisecond}, Addr: addr})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := listen("127.0.0.1:0")
	addr := h.LocalAddr().String()

	tgt := New(Config{Build: 22000})
	var mu sync.Mutex
	var logs []string
	ready := make(chan string, 1)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- ServeKDNET(sctx, tgt, kdnet.TargetConfig{
			Config:       kdnet.Config{Key: key},
			Host:         addr,
			Local:        "127.0.0.1:0",
			PokeInterval: 100 * time.Millisecond,
		}, PortOptions{
			Ready: func(a string) { ready <- a },
			Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) {
				mu.Lock()
				logs = append(logs, string(p))
				mu.Unlock()
			}), nil)),
		})
	}()
	if a := <-ready; a != "kdnet:"+addr {
		t.Fatalf("ready %q", a)
	}
	if v := kdnetVersion(ctx, t, h); v.MinorVersion != 22000 || v.KernBase != tgt.Layout().KernBase {
		t.Fatalf("version %+v", v)
	}
	h.Close()

	h2 := listen(addr)
	defer h2.Close()
	if v := kdnetVersion(ctx, t, h2); v.MinorVersion != 22000 {
		t.Fatalf("version from the restarted host %+v", v)
	}
	// The link acknowledges the last Continue before the machine acts on
	// it: wait for both sessions' GetVersion and Continue to be handled.
	testkit.WaitFor(t, "four requests handled", func() bool { return tgt.Stats().Requests >= 4 })
	stop()
	if err := <-served; err != nil {
		t.Fatalf("ServeKDNET: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if s := strings.Join(logs, "\n"); !strings.Contains(s, "session") || !strings.Contains(s, "KDNET endpoint stopped") {
		t.Fatalf("log %q", s)
	}
	if st := tgt.Stats(); st.StateChanges < 2 {
		t.Fatalf("target stats %+v", st)
	}
}

func TestServeKDNETBadHost(t *testing.T) {
	key, _ := kdnet.ParseKey("1.2.3.4")
	err := ServeKDNET(context.Background(), New(Config{}), kdnet.TargetConfig{Config: kdnet.Config{Key: key}, Host: "no-port"}, PortOptions{})
	if err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Fatalf("got %v", err)
	}
}

// writerFunc is an io.Writer that hands each write to a function.
type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}
