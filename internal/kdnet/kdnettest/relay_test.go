package kdnettest

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// recv reads one datagram, failing the test after a generous deadline.
func recv(t *testing.T, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), from
}

// TestRelay: the target's datagrams reach the host from the back socket,
// the host's answers reach the target, and a dropped datagram is not
// relayed.
func TestRelay(t *testing.T) {
	host, target := listen(t), listen(t)
	front, back := listen(t), listen(t)
	r := Start(front, back, addrOf(host), func(toHost bool, b []byte) bool { return string(b) == "drop me" })
	defer r.Close()

	for _, s := range []string{"drop me", "poke"} {
		if _, err := target.WriteToUDPAddrPort([]byte(s), addrOf(front)); err != nil {
			t.Fatal(err)
		}
	}
	if got, from := recv(t, host); got != "poke" || from != addrOf(back) {
		t.Fatalf("host got %q from %v, want \"poke\" from the back socket %v", got, from, addrOf(back))
	}
	if _, err := host.WriteToUDPAddrPort([]byte("response"), addrOf(back)); err != nil {
		t.Fatal(err)
	}
	if got, from := recv(t, target); got != "response" || from != addrOf(front) {
		t.Fatalf("target got %q from %v, want \"response\" from the front socket %v", got, from, addrOf(front))
	}
}
