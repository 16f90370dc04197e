package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kdsrv/internal/cli/kdclientcli"
	"kdsrv/internal/testkit"

	"kdsrv/internal/client"
	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/kdnet/kdnettest"
	"kdsrv/internal/sim"
	"kdsrv/internal/wire"
)

// KDNET end to end: a simulated kernel in KDNET mode (sim over a kdnet
// target endpoint, like kdtarget -kdnet) ↔ kdsrv (trans net, host role) ↔
// kdclient bridge ↔ a KDCOM debugger (kd.Host). Every socket is on
// loopback.

const netKey = "2steg4fzbj2sz.w8sa3ldw8i1c.2c3jhbvjqxqz7.1yyr7dsp1jkj"

// netTarget is a simulated machine whose debug link is KDNET toward a host.
type netTarget struct {
	sim    *sim.Machine
	ep     *kdnet.Link
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startNetTarget(t testing.TB, tgt *sim.Machine, hostAddr, key string) *netTarget {
	t.Helper()
	k, err := kdnet.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := kdnet.DialTarget(context.Background(), kdnet.TargetConfig{
		Config:       kdnet.Config{Key: k},
		Host:         hostAddr,
		Local:        "127.0.0.1:0",
		PokeInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &netTarget{sim: tgt, ep: ep, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if err := tgt.ServeEndpoint(ctx, ep); err != nil {
			t.Errorf("simulated target: %v", err)
		}
	}()
	t.Cleanup(n.stop)
	return n
}

// stop powers the machine's debug link off.
func (n *netTarget) stop() {
	n.once.Do(func() {
		n.cancel()
		<-n.done
		n.ep.Close()
	})
}

// lossyProxy relays UDP between one target and a host, dropping a share of
// the datagrams each way (seeded, so runs are repeatable).
type lossyProxy struct {
	front    *net.UDPConn
	permille int
	dropped  atomic.Int64
	relayed  atomic.Int64

	mu  sync.Mutex
	rng *rand.Rand
}

func newLossyProxy(t testing.TB, host netip.AddrPort, permille int) *lossyProxy {
	t.Helper()
	lo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))
	front, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{front: front, permille: permille, rng: rand.New(rand.NewPCG(10, 11))}
	r := kdnettest.Start(front, back, host, func(bool, []byte) bool {
		p.mu.Lock()
		drop := p.rng.IntN(1000) < p.permille
		p.mu.Unlock()
		if drop {
			p.dropped.Add(1)
		} else {
			p.relayed.Add(1)
		}
		return drop
	})
	t.Cleanup(r.Close)
	return p
}

func (p *lossyProxy) addr() string { return p.front.LocalAddr().String() }

// netSuite is suite for KDNET: the same calls, but a UDP link may need
// retransmissions (and the target retransmits its prints before the server
// has opened the port), so the final check is only that nothing was
// corrupt.
func netSuite(t *testing.T, s *session, tgt *sim.Machine) *kd.Host {
	t.Helper()
	return runSuite(t, s, tgt, true)
}

func netTrans(port int, key string) string { return fmt.Sprintf("net:port=%d,key=%s", port, key) }

func TestEndToEndKDNET(t *testing.T) {
	h := newHarness(t, harnessOpts{allow: []string{"net:*"}})
	port := testkit.FreeUDPPort(t)
	tgt := sim.New(sim.Config{PrintEvery: 50 * time.Millisecond})
	nt := startNetTarget(t, tgt, fmt.Sprintf("127.0.0.1:%d", port), netKey)
	s, err := h.open(h.serverSpec(""), netTrans(port, netKey), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	netSuite(t, s, tgt)
	if ns := nt.ep.NetStats(); ns.Sessions != 1 || ns.Rejected != 0 {
		t.Fatalf("target endpoint %+v", ns)
	}
	if strings.Contains(h.logs.String(), netKey) {
		t.Fatal("the KDNET key appears in the server log")
	}
	// The open link on that port is shared only with clients that know
	// its key.
	s.close()
	if _, err := h.open(h.serverSpec(""), netTrans(port, "1.2.3.9"), client.Options{TakeOver: true}); err == nil || !strings.Contains(err.Error(), "key does not match") {
		t.Fatalf("a client with another key got the open link: %v", err)
	}
	if _, err := h.open(h.serverSpec(""), netTrans(port, netKey), client.Options{}); err != nil {
		t.Fatalf("the right key after a wrong one: %v", err)
	}
}

// TestEndToEndKDNETLossy: 1% of the datagrams lost each way between target
// and server; every call still completes.
func TestEndToEndKDNETLossy(t *testing.T) {
	h := newHarness(t, harnessOpts{allow: []string{"net:*"}})
	port := testkit.FreeUDPPort(t)
	px := newLossyProxy(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), 10)
	tgt := sim.New(sim.Config{PrintEvery: 50 * time.Millisecond})
	startNetTarget(t, tgt, px.addr(), netKey)
	s, err := h.open(h.serverSpec(""), netTrans(port, netKey), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	netSuite(t, s, tgt)
	t.Logf("proxy relayed %d datagrams and dropped %d; target link %+v", px.relayed.Load(), px.dropped.Load(), tgt.Stats().Link)
	if px.dropped.Load() == 0 {
		t.Fatal("the proxy dropped nothing: the test proves nothing")
	}
}

// TestKDNETTargetRestart: the target reboots mid-session (new handshake,
// new data key, restarted sequence numbers); the client is told and its
// next break-in stops the new kernel.
func TestKDNETTargetRestart(t *testing.T) {
	h := newHarness(t, harnessOpts{allow: []string{"net:*"}})
	port := testkit.FreeUDPPort(t)
	hostAddr := fmt.Sprintf("127.0.0.1:%d", port)
	nt := startNetTarget(t, sim.New(sim.Config{}), hostAddr, netKey)
	s, err := h.open(h.serverSpec(""), netTrans(port, netKey), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	states := make(chan wire.State, 16)
	s.Bridge.OnState(func(st wire.State) {
		select {
		case states <- st:
		default:
		}
	})
	ctx := ctxFor(t, 60*time.Second)
	dh := s.attach(t, ctx)
	if _, err := dh.WriteVirtual(ctx, sim.DataBase, []byte("before the reboot")); err != nil {
		t.Fatal(err)
	}
	if err := dh.Continue(ctx); err != nil {
		t.Fatal(err)
	}

	nt.stop()
	rebooted := sim.New(sim.Config{Build: 22631})
	startNetTarget(t, rebooted, hostAddr, netKey)
	select {
	case st := <-states:
		if st.State != wire.StateReconnected {
			t.Fatalf("client told %v: %s", st.State, st.Text)
		}
	case <-ctx.Done():
		t.Fatal("the client was not told about the new session")
	}
	sc, err := dh.Break(ctx)
	if err != nil {
		t.Fatalf("break after the reboot: %v", err)
	}
	if sc.Exception.ExceptionCode != kd.StatusBreakpoint || !rebooted.Halted() {
		t.Fatalf("state %v, halted %v", sc, rebooted.Halted())
	}
	v, err := dh.Version(ctx)
	if err != nil || v.MinorVersion != 22631 {
		t.Fatalf("version after the reboot: %+v %v", v, err)
	}
	got, err := dh.ReadVirtual(ctx, sim.DataBase, 17)
	if err != nil || bytes.Equal(got, []byte("before the reboot")) {
		t.Fatalf("memory after the reboot %q %v (the old machine's)", got, err)
	}
}

// TestKDNETWrongKeyAndFlood: a target with the wrong key is never
// answered, and 100,000 junk datagrams leave the session working without
// growing memory.
func TestKDNETWrongKeyAndFlood(t *testing.T) {
	h := newHarness(t, harnessOpts{allow: []string{"net:*"}})
	port := testkit.FreeUDPPort(t)
	hostAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	tgt := sim.New(sim.Config{})
	startNetTarget(t, tgt, hostAddr.String(), netKey)
	s, err := h.open(h.serverSpec(""), netTrans(port, netKey), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 90*time.Second)
	dh := s.attach(t, ctx)
	wrong := startNetTarget(t, sim.New(sim.Config{}), hostAddr.String(), "1.2.3.4")

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc
	junk, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 1500)
	for i := range 100_000 {
		b := buf[:kdnet.MinDatagram+16*rng.IntN(80)]
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%4 != 0 {
			copy(b, kdnet.Magic)
			b[5] = byte(i % 2)
		}
		junk.WriteToUDPAddrPort(b, hostAddr)
		if i%10_000 == 0 {
			if v, err := dh.Version(ctx); err != nil || v.KernBase != tgt.Layout().KernBase {
				t.Fatalf("version during the flood (%d sent): %+v %v", i, v, err)
			}
		}
	}
	got, err := dh.ReadVirtual(ctx, sim.DataBase+0x4000, 4000)
	if err != nil || !bytes.Equal(got, patternBytes(sim.DataBase+0x4000, 4000)) {
		t.Fatalf("read after the flood: %v", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grow := int64(ms.HeapAlloc) - int64(heapBefore); grow > 32<<20 {
		t.Fatalf("heap grew by %d bytes during the flood", grow)
	}
	if ns := wrong.ep.NetStats(); ns.Received != 0 || ns.Sessions != 0 || ns.Pokes == 0 {
		t.Fatalf("the wrong-key target: %+v", ns)
	}
	if tgt.Stats().Connections != 1 {
		t.Fatalf("the real target was disturbed: %+v", tgt.Stats())
	}
}

// TestKDNETBuiltinCommand: kdclient's built-in version command against a
// KDNET target, the key taken from KDSRV_KDNET_KEY and sent over plain tcp
// on loopback as -insecure-send-kdnet-key allows.
func TestKDNETBuiltinCommand(t *testing.T) {
	h := newHarness(t, harnessOpts{allow: []string{"net:*"}})
	port := testkit.FreeUDPPort(t)
	startNetTarget(t, sim.New(sim.Config{Build: 26100}), fmt.Sprintf("127.0.0.1:%d", port), netKey)
	t.Setenv("KDSRV_KDNET_KEY", netKey)
	var out, errb bytes.Buffer
	args := []string{"-timeout", "20s", "-insecure-send-kdnet-key", "-k", fmt.Sprintf("kdsrv:server=@{%s},trans=@{net:port=%d}", h.serverSpec(""), port), "version"}
	if code := kdclientcli.Main(ctxFor(t, 30*time.Second), args, &out, &errb); code != 0 {
		t.Fatalf("kdclient version exited %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("a key from the environment drew a warning: %s", errb.String())
	}
	if !strings.Contains(out.String(), "build 26100") || !strings.Contains(out.String(), "machine x64") {
		t.Fatalf("output %q", out.String())
	}
	if strings.Contains(out.String()+errb.String(), netKey) {
		t.Fatal("the key was printed")
	}
}

// TestKDNETNotAllowed: without -allow net:PORT the server refuses.
func TestKDNETNotAllowed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, err := h.open(h.serverSpec(""), netTrans(testkit.FreeUDPPort(t), netKey), client.Options{})
	if err == nil || !strings.Contains(err.Error(), "net:") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), netKey) {
		t.Fatal("the key is in the error")
	}
}
