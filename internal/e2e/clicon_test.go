package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/cli/kdsrvcli"
	"kdsrv/internal/logx"
	"kdsrv/internal/testkit"

	"kdsrv/internal/client"
	"kdsrv/internal/server"
	"kdsrv/internal/sim"
	"kdsrv/internal/spec"
	"kdsrv/internal/transport"
)

// Reverse connections: kdsrv -t tcp:port=P,clicon=127.0.0.1 dials the
// client, which listens on 127.0.0.1 only (the tests never listen on other
// interfaces).

// reverseClient is a kdclient waiting for kdsrv to dial it. Its Dial runs
// in the background; port is where it listens.
type reverseClient struct {
	port   int
	events chan transport.Event
	done   chan reverseResult
	cancel context.CancelFunc
}

type reverseResult struct {
	conn *client.Conn
	err  error
}

// waitForServer starts a client for server=@{clientSpec} that listens on
// 127.0.0.1 and waits up to wait for the server; it returns once the
// client listens.
func waitForServer(t *testing.T, clientSpec string, wait time.Duration) *reverseClient {
	t.Helper()
	tr, err := spec.ParseClientTransport(clientSpec)
	if err != nil {
		t.Fatal(err)
	}
	rc := &reverseClient{events: make(chan transport.Event, 16), done: make(chan reverseResult, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	rc.cancel = cancel
	ctx = transport.WithEvents(ctx, func(e transport.Event) { rc.events <- e })
	opts := client.Options{
		Logger:           logx.Discard(),
		HandshakeTimeout: 10 * time.Second,
		Dial: func(ctx context.Context, t *spec.Transport) (net.Conn, error) {
			return transport.DialClicon(ctx, t, transport.CliconDialOptions{BindHost: "127.0.0.1"})
		},
	}
	go func() {
		c, err := client.Dial(ctx, tr, opts)
		rc.done <- reverseResult{c, err}
	}()
	t.Cleanup(func() {
		cancel()
		if r := <-rc.done; r.conn != nil {
			r.conn.Close()
		}
		rc.done <- reverseResult{err: errors.New("already taken")}
	})
	select {
	case e := <-rc.events:
		if e.Kind != transport.EventWaiting {
			t.Fatalf("first event %+v", e)
		}
		rc.port = e.Port
	case r := <-rc.done:
		t.Fatalf("the client did not start waiting: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not start waiting")
	}
	return rc
}

// result waits for the client's connection (or its failure).
func (rc *reverseClient) result(t *testing.T) (*client.Conn, error) {
	t.Helper()
	select {
	case r := <-rc.done:
		rc.done <- reverseResult{err: errors.New("already taken")}
		return r.conn, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("no server connected to the waiting client")
	}
	return nil, nil
}

// session opens trans on the connected client and runs its bridge.
func (rc *reverseClient) session(t *testing.T, trans string) *session {
	t.Helper()
	conn, err := rc.result(t)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := spec.ParseTarget(trans)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := conn.Start(ctxFor(t, 10*time.Second), tgt, client.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{cs}
	t.Cleanup(s.close)
	return s
}

func reverseHarness(t *testing.T, port int, retry bool) *harness {
	return newHarness(t, harnessOpts{
		transports: []string{fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1,password=s3cret", port)},
		mutate: func(c *server.Config) {
			c.Listen.CliconRetry = retry
			// Deriving a new password's key takes a while under -race on a
			// busy machine.
			c.HandshakeTimeout = 10 * time.Second
		},
	})
}

// TestEndToEndCliconClientFirst: the client waits on a port of a range;
// kdsrv started afterwards dials it and the suite runs.
func TestEndToEndCliconClientFirst(t *testing.T) {
	rc := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999,password=s3cret", 30*time.Second)
	h := reverseHarness(t, rc.port, false)
	if d := h.srv.Displays()[0]; d != fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d", rc.port) {
		t.Fatalf("display %q", d)
	}
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	suite(t, rc.session(t, trans), tgt)
}

// TestEndToEndCliconServerFirst: kdsrv dials a client that is not there
// yet and keeps trying; the client starts later and gets connected. A
// wrong password fails as in the forward direction, and with -clicon-retry
// the server dials every restarted client: the suite, then a re-attach.
func TestEndToEndCliconServerFirst(t *testing.T) {
	port := testkit.FreeTCPPort(t)
	h := reverseHarness(t, port, true)
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	testkit.WaitFor(t, "the server's first dials to fail", func() bool {
		return strings.Contains(h.logs.String(), "cannot reach the client at 127.0.0.1:")
	})
	cspec := fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d", port)

	rc := waitForServer(t, cspec+",password=wrong1", 30*time.Second)
	if _, err := rc.result(t); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("wrong password: %v", err)
	}
	rc = waitForServer(t, cspec+",password=s3cret", 30*time.Second)
	s := rc.session(t, trans)
	suite(t, s, tgt)
	s.close()
	s.Conn.Close()

	rc = waitForServer(t, cspec+",password=s3cret", 30*time.Second)
	reattached(t, rc.session(t, trans))
	if !strings.Contains(h.logs.String(), "cannot reach the client at 127.0.0.1:") {
		t.Errorf("the server's failed dials were not logged:\n%s", h.logs)
	}
}

// TestCliconServerEndsWhenClientGone: without -clicon-retry, Serve ends
// with a message that says what happened and what to do once the client
// has left.
func TestCliconServerEndsWhenClientGone(t *testing.T) {
	rc := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999", 30*time.Second)
	h := newHarness(t, harnessOpts{transports: []string{fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1", rc.port)}})
	conn, err := rc.result(t)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.served.Done():
		t.Fatalf("Serve ended while the client was connected: %v", h.served.Err())
	case <-time.After(200 * time.Millisecond):
	}
	conn.Close()
	select {
	case <-h.served.Done():
		err := h.served.Err()
		want := fmt.Sprintf("tcp:clicon=127.0.0.1,port=%d: the reverse connection to 127.0.0.1:%d was closed; restart kdsrv to connect again (or run it with -clicon-retry)", rc.port, rc.port)
		if !errors.Is(err, transport.ErrReverseGone) || err.Error() != want {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not notice that its client left")
	}
}

// TestCliconMainExits: kdsrv itself exits 1 with the message once its
// client has gone.
func TestCliconMainExits(t *testing.T) {
	rc := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999", 30*time.Second)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- kdsrvcli.Main(ctx, []string{"-t", fmt.Sprintf("tcp:port=%d,clicon=127.0.0.1", rc.port), "-bind", "127.0.0.1", "-qr-port", "0", "-no-mdns"}, &stdout, &stderr)
	}()
	conn, err := rc.result(t)
	if err != nil {
		cancel()
		<-code
		t.Fatalf("%v\nkdsrv said:\n%s", err, stderr.String())
	}
	conn.Close()
	select {
	case c := <-code:
		want := fmt.Sprintf("kdsrv: tcp:clicon=127.0.0.1,port=%d: the reverse connection to 127.0.0.1:%d was closed; restart kdsrv to connect again (or run it with -clicon-retry)\n", rc.port, rc.port)
		if c != 1 || !strings.HasSuffix(stderr.String(), want) {
			t.Fatalf("exit %d, stderr:\n%s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		cancel()
		<-code
		t.Fatal("kdsrv did not exit after its client left")
	}
}

// TestCliconSecondClientNeverConnected: a reverse server serves one
// client; a second client waiting on another port is never dialed, and
// nothing on the server side accepts connections.
func TestCliconSecondClientNeverConnected(t *testing.T) {
	first := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999,password=s3cret", 30*time.Second)
	h := reverseHarness(t, first.port, false)
	if _, ok := h.srv.Addrs()[0].(*net.TCPAddr); ok {
		t.Fatal("a reverse server has a listening address")
	}
	// The first client stopped listening once the server connected, so the
	// second may well get the same port: the server still never dials again.
	second := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999,password=s3cret", 1500*time.Millisecond)
	trans, _ := h.addTarget("vm1", sim.Config{})
	s := first.session(t, trans)
	_, err := second.result(t)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no kdsrv connected") {
		t.Fatalf("second client: %v", err)
	}
	// The first session still works.
	s.attach(t, ctxFor(t, 20*time.Second))
}

// TestCliconImpostorRefused: a connection to the waiting client from
// another address (127.0.0.2) is dropped; the real server still gets in.
func TestCliconImpostorRefused(t *testing.T) {
	rc := waitForServer(t, "tcp:clicon=127.0.0.1,port=20000:29999,password=s3cret", 30*time.Second)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	imp, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", rc.port))
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
	}
	imp.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(imp)
	imp.Close()
	if len(b) != 0 {
		t.Fatalf("the impostor got %q", b)
	}
	select {
	case e := <-rc.events:
		if e.Kind != transport.EventRejected || !bytes.Contains([]byte(e.Text), []byte("127.0.0.2")) {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the rejection was not reported")
	}
	h := reverseHarness(t, rc.port, false)
	trans, tgt := h.addTarget("vm1", sim.Config{PrintEvery: 50 * time.Millisecond})
	suite(t, rc.session(t, trans), tgt)
}
