package netem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/testkit"
)

// dialProxy starts a proxy with profile p in front of target and dials it;
// the connection closes when the test ends, the proxy is the caller's.
func dialProxy(t *testing.T, target string, p Profile) (*Proxy, net.Conn) {
	t.Helper()
	px, err := NewProxy("127.0.0.1:0", target, p)
	if err != nil {
		t.Fatalf("NewProxy: %v", err)
	}
	d := net.Dialer{Timeout: testTimeout}
	c, err := d.Dial("tcp", px.Addr())
	if err != nil {
		px.Close()
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return px, c
}

func TestProxyRoundTripAndStats(t *testing.T) {
	t.Parallel()
	const delay = 15 * time.Millisecond
	px, c := dialProxy(t, echoServer(t), Profile{Delay: delay})
	defer px.Close()
	msg := []byte("through the wan")
	start := time.Now()
	c.Write(msg)
	if got := readN(t, c, len(msg)); string(got) != string(msg) {
		t.Fatalf("echo through proxy = %q, want %q", got, msg)
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Errorf("round trip through proxy took %v, want ≥ 2·Delay = %v", rtt, 2*delay)
	}
	st := px.Stats()
	if st.Sent.Bytes != int64(len(msg)) || st.Received.Bytes != int64(len(msg)) {
		t.Errorf("proxy Stats = %+v, want %d bytes each way", st, len(msg))
	}
	c.(*net.TCPConn).CloseWrite()
	expectEOF(t, c)
}

func TestProxyCloseDropsConnections(t *testing.T) {
	t.Parallel()
	px, c := dialProxy(t, echoServer(t), Profile{Delay: time.Hour})
	c.Write([]byte("never delivered"))
	testkit.WaitFor(t, "the proxy to take the data in", func() bool { return px.Stats().Sent.Bytes > 0 })
	done := make(chan error, 1)
	go func() { done <- px.Close() }()
	if err := waitErr(t, done, "Proxy.Close hung with an hour of data pending"); err != nil {
		t.Errorf("Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("client read data after the proxy closed")
	}
	if c2, err := net.DialTimeout("tcp", px.Addr(), testTimeout); err == nil {
		c2.Close()
		t.Error("proxy still accepts after Close")
	}
}

func TestProxyTargetDown(t *testing.T) {
	t.Parallel()
	dead := fmt.Sprintf("127.0.0.1:%d", testkit.FreeTCPPort(t))
	px, c := dialProxy(t, dead, Profile{})
	defer px.Close()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded although the target is down")
	}
	if err := px.Err(); err == nil || !strings.Contains(err.Error(), "cannot reach target "+dead) {
		t.Errorf("Err() = %v, want it to name the unreachable target", err)
	}
}

func TestNewProxyErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ listen, target, want string }{
		{"127.0.0.1:0", "no-port", "not host:port"},
		{"127.0.0.1:notaport", "127.0.0.1:1", "cannot listen"},
	} {
		if px, err := NewProxy(tt.listen, tt.target, Profile{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			if px != nil {
				px.Close()
			}
			t.Errorf("NewProxy(%q, %q) error = %v, want %q", tt.listen, tt.target, err, tt.want)
		}
	}
}

func TestRelay(t *testing.T) {
	t.Parallel()
	t.Run("both ways with half close", func(t *testing.T) {
		t.Parallel()
		c1, s1 := testkit.TCPPair(t)
		c2, s2 := testkit.TCPPair(t)
		errc := make(chan error, 1)
		go func() { errc <- Relay(context.Background(), s1, c2) }()
		c1.Write([]byte("request"))
		c1.CloseWrite()
		if got := readN(t, s2, 7); string(got) != "request" {
			t.Fatalf("relayed %q, want \"request\"", got)
		}
		expectEOF(t, s2)
		s2.Write([]byte("response"))
		s2.Close()
		if got := readN(t, c1, 8); string(got) != "response" {
			t.Fatalf("relayed back %q, want \"response\"", got)
		}
		expectEOF(t, c1)
		if err := waitErr(t, errc, "Relay did not return after both sides closed"); err != nil {
			t.Errorf("Relay = %v, want nil after both sides closed", err)
		}
	})
	t.Run("no half close ends both", func(t *testing.T) {
		t.Parallel()
		a1, a2 := net.Pipe()
		b1, b2 := net.Pipe()
		defer a1.Close()
		defer b2.Close()
		errc := make(chan error, 1)
		go func() { errc <- Relay(context.Background(), a2, b1) }()
		a1.Close()
		b2.SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := b2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("far side read %v, want io.EOF", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Relay = %v, want nil", err)
		}
	})
	t.Run("context cancel", func(t *testing.T) {
		t.Parallel()
		_, s1 := testkit.TCPPair(t)
		c2, _ := testkit.TCPPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- Relay(ctx, s1, c2) }()
		time.Sleep(10 * time.Millisecond)
		cancel()
		if err := waitErr(t, errc, "Relay ignored its context"); !errors.Is(err, context.Canceled) {
			t.Errorf("Relay = %v, want context.Canceled", err)
		}
	})
}

func benchThroughput(b *testing.B, w, r net.Conn) {
	b.Helper()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		rb := make([]byte, 64<<10)
		want := int64(b.N) * int64(len(buf))
		r.SetReadDeadline(time.Now().Add(time.Minute))
		for got := int64(0); got < want; {
			n, err := r.Read(rb)
			if err != nil {
				errc <- err
				return
			}
			got += int64(n)
		}
		errc <- nil
	}()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatalf("read: %v", err)
	}
}

// BenchmarkPipeThroughput measures the emulator's own cost (Delay=0).
func BenchmarkPipeThroughput(b *testing.B) {
	w, r := Pipe(Profile{})
	defer w.Close()
	defer r.Close()
	benchThroughput(b, w, r)
}

// BenchmarkRelayThroughput measures the dumb relay baseline over loopback TCP.
func BenchmarkRelayThroughput(b *testing.B) {
	pair := func() (net.Conn, net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		return c, s
	}
	c1, s1 := pair()
	c2, s2 := pair()
	defer c1.Close()
	defer s2.Close()
	done := make(chan error, 1)
	go func() { done <- Relay(context.Background(), s1, c2) }()
	benchThroughput(b, c1, s2)
	c1.Close()
	s2.Close()
	<-done
}
