package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"go.uber.org/goleak"

	"kdsrv/internal/spec"
)

// cliconClient runs DialClicon for t (client side) on 127.0.0.1 and
// reports the port it listens on.
type cliconClient struct {
	port   chan int
	events chan Event
	result chan cliconResult
	cancel context.CancelFunc
}

type cliconResult struct {
	c   net.Conn
	err error
}

func startCliconClient(t *testing.T, clientSpec string, wait time.Duration) *cliconClient {
	t.Helper()
	return startCliconClientOn(t, clientSpec, "127.0.0.1", wait)
}

// startCliconClientOn is startCliconClient listening on bindHost.
func startCliconClientOn(t *testing.T, clientSpec, bindHost string, wait time.Duration) *cliconClient {
	t.Helper()
	tr := clientT(t, clientSpec)
	cc := &cliconClient{port: make(chan int, 1), events: make(chan Event, 16), result: make(chan cliconResult, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	cc.cancel = cancel
	ctx = WithEvents(ctx, func(e Event) {
		if e.Kind == EventWaiting {
			cc.port <- e.Port
		}
		select {
		case cc.events <- e:
		default:
		}
	})
	go func() {
		c, err := DialClicon(ctx, tr, CliconDialOptions{BindHost: bindHost})
		cc.result <- cliconResult{c, err}
	}()
	t.Cleanup(func() {
		cancel()
		if r := <-cc.result; r.c != nil {
			r.c.Close()
		}
		cc.result <- cliconResult{}
	})
	return cc
}

func (cc *cliconClient) waitPort(t *testing.T) int {
	t.Helper()
	select {
	case p := <-cc.port:
		return p
	case r := <-cc.result:
		cc.result <- r
		t.Fatalf("client ended before listening: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("client did not start listening")
	}
	return 0
}

func (cc *cliconClient) conn(t *testing.T) net.Conn {
	t.Helper()
	select {
	case r := <-cc.result:
		cc.result <- cliconResult{err: errors.New("result already taken")}
		if r.err != nil {
			t.Fatalf("client: %v", r.err)
		}
		return r.c
	case <-time.After(15 * time.Second):
		t.Fatal("no server connected to the client")
	}
	return nil
}

func listenReverse(t *testing.T, port int, o Options) Listener {
	t.Helper()
	o.BindHost = "127.0.0.1"
	ln, err := Listen(context.Background(), serverT(t, fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1", port)), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptUntil calls Accept until it returns a connection or a permanent
// error, at most n times; temporary errors are collected.
func acceptUntil(t *testing.T, ln Listener, n int) (net.Conn, []error, error) {
	t.Helper()
	var temps []error
	for range n {
		c, err := ln.Accept()
		if err == nil {
			return c, temps, nil
		}
		if isTemp(err) {
			temps = append(temps, err)
			continue
		}
		return nil, temps, err
	}
	t.Fatalf("no connection after %d accepts: %v", n, temps)
	return nil, nil, nil
}

func isTemp(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// connected accepts the server's end of the reverse connection to cc (at
// most tries Accept calls), takes the client's end, and checks that the two
// are one connection. Both ends close when the test ends.
func (cc *cliconClient) connected(t *testing.T, ln Listener, tries int) (sc, c net.Conn) {
	t.Helper()
	sc, _, err := acceptUntil(t, ln, tries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	c = cc.conn(t)
	t.Cleanup(func() { c.Close() })
	pair(t, sc, c)
	return sc, c
}

// pair checks that a and b are the two ends of one connection.
func pair(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
		d[0].SetDeadline(time.Now().Add(10 * time.Second))
		d[1].SetDeadline(time.Now().Add(10 * time.Second))
		msg := fmt.Sprintf("from %v", d[0].LocalAddr())
		if _, err := d[0].Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(d[1], got); err != nil || string(got) != msg {
			t.Fatalf("read %q %v, want %q", got, err, msg)
		}
	}
}

// TestCliconClientFirst: the client listens first; the server's first
// Accept connects to it.
func TestCliconClientFirst(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cc := startCliconClient(t, "tcp:clicon=127.0.0.1,port=20000:29999", 20*time.Second)
	port := cc.waitPort(t)
	ln := listenReverse(t, port, Options{})
	if got, want := ln.Display(), fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d", port); got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	if r, ok := ln.(interface{ Reverse() bool }); !ok || !r.Reverse() {
		t.Error("listener does not say it is reverse")
	}
	sc, temps, err := acceptUntil(t, ln, 3)
	if err != nil || len(temps) != 0 {
		t.Fatalf("accept: %v (after %v)", err, temps)
	}
	defer sc.Close()
	c := cc.conn(t)
	defer c.Close()
	pair(t, sc, c)
	ev := <-cc.events
	if ev.Kind != EventWaiting || ev.Text != fmt.Sprintf("waiting for kdsrv to connect on tcp port %d (from 127.0.0.1)", port) {
		t.Errorf("event %+v", ev)
	}
}

// TestCliconServerFirst: the server dials before the client listens; its
// failed dials are temporary errors until the client appears.
func TestCliconServerFirst(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := testkit.FreeTCPPort(t)
	ln := listenReverse(t, port, Options{})
	c1, err := ln.Accept()
	if err == nil || !isTemp(err) || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "trying again in 250ms") {
		t.Fatalf("first accept: %v %v", c1, err)
	}
	cc := startCliconClient(t, fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d", port), 20*time.Second)
	cc.waitPort(t)
	cc.connected(t, ln, 20)
}

// TestCliconClosedNoRetry: once the connection is closed, Accept fails for
// good with a message that says what to do.
func TestCliconClosedNoRetry(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cc := startCliconClient(t, "tcp:clicon=127.0.0.1,port=20000:29999", 20*time.Second)
	port := cc.waitPort(t)
	ln := listenReverse(t, port, Options{})
	sc, _, err := acceptUntil(t, ln, 3)
	if err != nil {
		t.Fatal(err)
	}
	c := cc.conn(t)
	next := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		next <- err
	}()
	select {
	case err := <-next:
		t.Fatalf("Accept returned while the connection was open: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()  // the client goes away...
	sc.Close() // ...and the server notices
	err = <-next
	want := fmt.Sprintf("the reverse connection to 127.0.0.1:%d was closed; restart kdsrv to connect again (or run it with -clicon-retry)", port)
	if !errors.Is(err, ErrReverseGone) || isTemp(err) || err.Error() != want {
		t.Fatalf("got %v", err)
	}
	if _, err2 := ln.Accept(); err2 != err {
		t.Fatalf("second call: %v", err2)
	}
}

// TestCliconRetryReconnects: with CliconRetry the server dials a
// restarted client again.
func TestCliconRetryReconnects(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := testkit.FreeTCPPort(t)
	ln := listenReverse(t, port, Options{CliconRetry: true, CliconWindow: time.Millisecond})
	for range 3 {
		cc := startCliconClient(t, fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d", port), 20*time.Second)
		cc.waitPort(t)
		sc, c := cc.connected(t, ln, 30)
		c.Close()
		sc.Close()
	}
}

// TestCliconWindow: a client that never listens makes a server without
// retry give up after the window, naming the refusal and the fix.
func TestCliconWindow(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := testkit.FreeTCPPort(t)
	ln := listenReverse(t, port, Options{CliconWindow: 300 * time.Millisecond})
	_, temps, err := acceptUntil(t, ln, 20)
	if len(temps) == 0 || !errors.Is(err, ErrReverseGone) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after %d temporary errors: %v", len(temps), err)
	}
	for _, w := range []string{
		fmt.Sprintf("could not reach the client at 127.0.0.1:%d", port),
		"connection refused",
		fmt.Sprintf("server=@{tcp:clicon=<this host>,port=%d}", port),
		"-clicon-retry",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
}

// TestCliconCloseUnblocks: Close ends an Accept that waits for the back-off
// or for the connection out to be closed.
func TestCliconCloseUnblocks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("backoff", func(t *testing.T) {
		ln := listenReverse(t, testkit.FreeTCPPort(t), Options{CliconRetry: true})
		for range 4 { // the next wait is 2 s
			if _, err := ln.Accept(); !isTemp(err) {
				t.Fatal(err)
			}
		}
		closeEndsAccept(t, ln, time.Second) // well before the back-off ends
	})
	t.Run("active", func(t *testing.T) {
		cc := startCliconClient(t, "tcp:clicon=127.0.0.1,port=20000:29999", 20*time.Second)
		ln := listenReverse(t, cc.waitPort(t), Options{})
		sc, _, err := acceptUntil(t, ln, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		defer cc.conn(t).Close()
		closeEndsAccept(t, ln, 10*time.Second)
	})
}

// closeEndsAccept calls Accept, closes ln while the call waits, and checks
// that the call ends within limit with net.ErrClosed.
func closeEndsAccept(t *testing.T, ln Listener, limit time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Accept start waiting
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(limit):
		t.Fatalf("Close did not end the waiting Accept within %v", limit)
	}
}

// TestCliconRejectsImpostor: the client drops a connection that does not
// come from the expected server (127.0.0.2 against 127.0.0.1) and keeps
// waiting for the real one.
func TestCliconRejectsImpostor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cc := startCliconClient(t, "tcp:clicon=127.0.0.1,port=20000:29999", 20*time.Second)
	port := cc.waitPort(t)
	<-cc.events // waiting
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	imp, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
	}
	defer imp.Close()
	imp.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := imp.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("impostor's connection not closed: %d %v", n, err)
	}
	select {
	case ev := <-cc.events:
		if ev.Kind != EventRejected || !strings.Contains(ev.Text, "refused a connection from 127.0.0.2") || !strings.Contains(ev.Text, "still waiting") {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no rejection reported")
	}
	cc.connected(t, listenReverse(t, port, Options{}), 3)
}

// TestCliconClientGivesUp: a client whose wait ends says which port it
// waited on and how to start the server.
func TestCliconClientGivesUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// A range of its own: the other tests' listeners (in this package and
	// in packages tested at the same time) take the lowest free port of
	// 20000:29999, so one of them could take this port as soon as the
	// client frees it, and the check below would see that listener.
	cc := startCliconClient(t, "tcp:clicon=127.0.0.1,port=28500:28999", 300*time.Millisecond)
	port := cc.waitPort(t)
	r := <-cc.result
	cc.result <- cliconResult{}
	if r.err == nil || !errors.Is(r.err, context.DeadlineExceeded) ||
		!strings.Contains(r.err.Error(), fmt.Sprintf("kdsrv -t tcp:port=%d,clicon=<this host> on 127.0.0.1", port)) {
		t.Fatalf("got %v", r.err)
	}
	// The port is free again: nobody can connect any more.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatal("the client still listens after giving up")
	}
}

// TestCliconListenErrors: ranges and host names for -bind are refused.
func TestCliconListenErrors(t *testing.T) {
	tr := serverT(t, "tcp:port=5005,clicon=client1")
	tr.Port = spec.PortRange{Lo: 5005, Hi: 5010}
	if _, err := Listen(context.Background(), tr, Options{}); err == nil || !strings.Contains(err.Error(), "one port") {
		t.Errorf("range: %v", err)
	}
	if _, err := Listen(context.Background(), serverT(t, "tcp:port=5005,clicon=client1"), Options{BindHost: "myhost"}); err == nil || !strings.Contains(err.Error(), "-bind") {
		t.Errorf("bind name: %v", err)
	}
	ln, err := Listen(context.Background(), serverT(t, `tcp:port=5005,clicon=\\fe80::1,ipversion=6`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, want := ln.Display(), "tcp:clicon=fe80::1,port=5005,ipversion=6"; got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	if got := ln.Addr().String(); got != "[fe80::1]:5005" || ln.Addr().Network() != "tcp6" {
		t.Errorf("addr %s %s", ln.Addr().Network(), got)
	}
}

// TestCliconIPv6: a reverse connection over ::1 with ipversion=6.
func TestCliconIPv6(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	cc := startCliconClientOn(t, "tcp:clicon=::1,port=20000:29999,ipversion=6", "::1", 20*time.Second)
	ln, err := Listen(context.Background(), serverT(t, fmt.Sprintf("tcp:port=%d,clicon=::1,ipversion=6", cc.waitPort(t))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc.connected(t, ln, 3)
}
