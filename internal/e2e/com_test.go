//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	"kdsrv/internal/cli/kdsrvcli"
	"kdsrv/internal/testkit"

	"kdsrv/internal/client"
	"kdsrv/internal/commux"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
)

// The com transport end to end: kdsrv listens on the slave of one
// pseudo-terminal, the clients dial the slave of another, and a relay in
// the test joins the two masters like a null-modem cable (and can corrupt
// bytes on the way). Pseudo-terminals behave like serial ports here; the
// tests run on Linux.

// cable is a null-modem cable of two pseudo-terminals (testkit.PTYCable):
// kdsrv listens on end A, the clients dial end B.
type cable struct{ *testkit.PTYCable }

// newCable starts the relay with the given per-byte error rate; it stops
// at cleanup, which runs after the cleanups registered later (the server
// and the sessions).
func newCable(t *testing.T, noise float64) *cable {
	c := &cable{testkit.NewPTYCable(t)}
	c.SetNoise(noise)
	return c
}

// comSpec is the client's server=@{...} for channel ch of the cable.
func (c *cable) comSpec(ch int, extra string) string {
	s := fmt.Sprintf("com:port=%s,baud=115200,channel=%d", c.B, ch)
	if extra != "" {
		s += "," + extra
	}
	return s
}

// openCOM opens a session like h.open and closes its connection at
// cleanup, before the session's bridge stops: a COM port stays open (and
// registered in this process) while any connection on it is open, and a
// later test may get the same pseudo-terminal name.
func openCOM(h *harness, serverSpec, trans string, opts client.Options) (*session, error) {
	s, err := h.open(serverSpec, trans, opts)
	if err == nil {
		h.t.Cleanup(func() { s.Conn.Close() })
	}
	return s, err
}

// lineStats are the counters of the client's end of the line.
func lineStats(t *testing.T, s *session) commux.Stats {
	t.Helper()
	l, ok := s.Conn.Wire().NetConn().(transport.COMLine)
	if !ok {
		t.Fatalf("the session's connection is a %T, not a com connection", s.Conn.Wire().NetConn())
	}
	return l.LineStats()
}

// TestEndToEndCOM: the suite over a COM channel with a password (wrong,
// missing, right), then a second session re-attaches after the first
// closed its port, and a client on a channel nobody serves is told so.
func TestEndToEndCOM(t *testing.T) {
	cab := newCable(t, 0)
	h := newHarness(t, harnessOpts{
		transports: []string{fmt.Sprintf("com:port=%s,baud=115200,channel=3,password=s3cret", cab.A)},
	})
	if d, want := h.srv.Displays()[0], fmt.Sprintf("com:port=%s,baud=115200,channel=3", cab.A); d != want {
		t.Fatalf("display %q, want %q", d, want)
	}
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	t.Run("wrong password", func(t *testing.T) {
		_, err := openCOM(h, cab.comSpec(3, "password=wrong1"), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing password", func(t *testing.T) {
		_, err := openCOM(h, cab.comSpec(3, ""), trans, client.Options{})
		if err == nil || !strings.Contains(err.Error(), "requires a password") {
			t.Fatalf("got %v", err)
		}
	})
	var s *session
	t.Run("suite", func(t *testing.T) {
		var err error
		s, err = openCOM(h, cab.comSpec(3, "password=s3cret"), trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		suite(t, s, tgt)
		if st := lineStats(t, s); st.FramesReceived == 0 || st.CRCErrors != 0 {
			t.Errorf("clean line: %+v", st)
		}
	})
	if t.Failed() {
		return
	}
	t.Run("re-attach", func(t *testing.T) {
		s.close()
		s.Conn.Close() // the client's port closes with its last connection
		s2, err := openCOM(h, cab.comSpec(3, "password=s3cret"), trans, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		reattached(t, s2)
	})
	t.Run("unserved channel", func(t *testing.T) {
		_, err := openCOM(h, cab.comSpec(9, "password=s3cret"), trans, client.Options{})
		if !errors.Is(err, commux.ErrNoListener) || !strings.Contains(err.Error(), "no kdsrv listening on COM channel 9 of "+cab.B) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestEndToEndCOMThreeChannels: three -t com: channels of one kdsrv on one
// port, three targets, three clients sharing the other end of the cable;
// the suite runs on all three at once.
func TestEndToEndCOMThreeChannels(t *testing.T) {
	cab := newCable(t, 0)
	threeChannels(t, cab, commux.Config{})
}

// TestEndToEndCOMNoise: the same three concurrent sessions with one byte
// in a thousand corrupted on the line, in both directions; checksums and
// retransmission deliver every result intact.
//
// The multiplexers use 128-byte frames and a 50 ms minimum retransmission
// time-out here (harnessOpts.com) only to keep the test short: the
// defaults (256-byte frames, 100 ms) also complete it, in about 30 s on a
// loaded 2-core machine instead of 2 s.
func TestEndToEndCOMNoise(t *testing.T) {
	cab := newCable(t, 1e-3)
	stats := threeChannels(t, cab, commux.Config{MaxFrame: 128, RetransmitTimeout: 50 * time.Millisecond})
	if cab.Corrupted() == 0 {
		t.Fatal("the cable corrupted nothing")
	}
	if stats.CRCErrors == 0 || stats.Retransmits == 0 {
		t.Errorf("the line recovered from %d corrupted bytes without checksum errors or retransmissions: %+v", cab.Corrupted(), stats)
	}
	t.Logf("%d bytes corrupted; client line: %+v", cab.Corrupted(), stats)
}

func threeChannels(t *testing.T, cab *cable, com commux.Config) commux.Stats {
	channels := []int{0, 7, 254}
	var ts []string
	for _, ch := range channels {
		ts = append(ts, fmt.Sprintf("com:port=%s,baud=115200,channel=%d", cab.A, ch))
	}
	h := newHarness(t, harnessOpts{transports: ts, com: com})
	for i, ch := range channels {
		if d := h.srv.Displays()[i]; d != ts[i] {
			t.Fatalf("channel %d: display %q, want %q", ch, d, ts[i])
		}
	}
	var stats commux.Stats
	var mu sync.Mutex
	t.Run("sessions", func(t *testing.T) {
		for i, ch := range channels {
			name := fmt.Sprintf("vm%d", i)
			// Each target has its own build, so a session routed to
			// the wrong target fails the suite's version check.
			trans, tgt := h.addTarget(name, sim.Config{PrintEvery: 50 * time.Millisecond, Build: uint16(26100 + i)})
			t.Run(fmt.Sprintf("channel %d", ch), func(t *testing.T) {
				t.Parallel()
				s, err := openCOM(h, cab.comSpec(ch, ""), trans, client.Options{})
				if err != nil {
					t.Fatal(err)
				}
				suite(t, s, tgt)
				// Memory written on this channel stays on its target.
				ctx := ctxFor(t, 30*time.Second)
				host := s.attach(t, ctx)
				mark := []byte(name)
				addr := sim.DataBase + 0x20000
				if _, err := host.WriteVirtual(ctx, addr, mark); err != nil {
					t.Fatal(err)
				}
				got, err := host.ReadVirtual(ctx, addr, len(mark))
				if err != nil || !bytes.Equal(got, mark) {
					t.Fatalf("read back %q %v", got, err)
				}
				mu.Lock()
				if st := lineStats(t, s); st.FramesReceived > stats.FramesReceived {
					stats = st
				}
				mu.Unlock()
			})
		}
	})
	return stats
}

// TestCOMChannelOutOfRange: kdsrv and kdclient refuse channels outside
// 0-254 before they touch a port.
func TestCOMChannelOutOfRange(t *testing.T) {
	ctx := ctxFor(t, 10*time.Second)
	for _, ch := range []string{"255", "256", "-1"} {
		var out, errb bytes.Buffer
		code := kdsrvcli.Main(ctx, []string{"-t", "com:port=COM1,baud=115200,channel=" + ch}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "channel must be a number from 0 to 254") {
			t.Errorf("kdsrv channel=%s: exit %d, %q", ch, code, errb.String())
		}
		out.Reset()
		errb.Reset()
		code = kdclientcli.Main(ctx, []string{"-k", "kdsrv:server=@{com:port=COM1,baud=115200,channel=" + ch + "},trans=@{com:port=COM2,baud=115200}", "version"}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "channel must be a number from 0 to 254") {
			t.Errorf("kdclient channel=%s: exit %d, %q", ch, code, errb.String())
		}
	}
}

// TestCOMPortBaudConflict: two -t com: on one port share it (a client
// reaches both channels); a third with another baud rate is refused with
// the fix.
func TestCOMPortBaudConflict(t *testing.T) {
	cab := newCable(t, 0)
	h := newHarness(t, harnessOpts{transports: []string{
		fmt.Sprintf("com:port=%s,baud=115200,channel=1", cab.A),
		fmt.Sprintf("com:port=%s,baud=115200,channel=2", cab.A),
	}})
	trans, _ := h.addTarget("vm1", sim.Config{})
	for _, ch := range []int{1, 2} {
		s, err := openCOM(h, cab.comSpec(ch, ""), trans, client.Options{})
		if err != nil {
			t.Fatalf("channel %d: %v", ch, err)
		}
		s.close()
		s.Conn.Close()
	}
	tr, err := spec.ParseServerTransport(fmt.Sprintf("com:port=%s,baud=9600,channel=5", cab.A))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := transport.Listen(context.Background(), tr, transport.Options{COM: h.srvCOM})
	if err == nil {
		ln.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "already open at 115200 baud") || !strings.Contains(err.Error(), "use baud=115200") {
		t.Fatalf("conflicting baud: %v", err)
	}
}
