//go:build !windows

package targetlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// vmServer plays a VM serving its serial port on a unix socket.
type vmServer struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// serveVM listens on path; every accepted connection gets greeting (if any)
// and is handed to the test on conns.
func serveVM(t *testing.T, path string, greeting string) *vmServer {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &vmServer{ln: ln, conns: make(chan net.Conn, 4), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if greeting != "" {
				_ = c.SetWriteDeadline(time.Now().Add(wait))
				_, _ = c.Write([]byte(greeting))
			}
			select {
			case s.conns <- c:
			default:
				_ = c.Close()
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener (removing the socket file) and every connection
// not yet taken.
func (s *vmServer) stop() {
	s.once.Do(func() {
		_ = s.ln.Close()
		<-s.done
		for {
			select {
			case c := <-s.conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
}

// leave is the VM going away: its listener closes (removing the socket
// file) and so does its connection vm.
func (s *vmServer) leave(vm net.Conn) {
	s.stop()
	_ = vm.Close()
}

// accept returns the next connection.
func (s *vmServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { _ = c.Close() })
		return c
	case <-time.After(wait):
		t.Fatal("the link did not connect to the VM socket")
		return nil
	}
}

// readN reads exactly n bytes from r under a deadline.
func readN(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, n int) string {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// pipeSetup makes a directory with an allow-list for its sockets.
func pipeSetup(t *testing.T) (sock string, allow *AllowList) {
	t.Helper()
	dir := t.TempDir()
	a := mustAllow(t, []string{dir + "/*.sock"}, true)
	return filepath.Join(dir, "vm.sock"), a
}

// openVM starts a VM greeting with greeting on a fresh allowed socket,
// opens the link "com:pipe,port=SOCKET"+opts to it (closed when the test
// ends), and returns the link, the VM and the socket's path.
func openVM(t *testing.T, opts, greeting string) (Stream, *vmServer, string) {
	t.Helper()
	sock, allow := pipeSetup(t)
	srv := serveVM(t, sock, greeting)
	return mustOpenStream(t, "com:pipe,port="+sock+opts, allow), srv, sock
}

func TestPipeBytesDeadlinesEOF(t *testing.T) {
	t.Parallel()
	l, srv, sock := openVM(t, ",resets=2", "")
	vm := srv.accept(t)
	if got, want := l.String(), "pipe "+sock; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if r, ok := l.(interface{ Resets() int }); !ok || r.Resets() != 2 {
		t.Errorf("Resets() missing or wrong on %T", l)
	}

	// Raw bytes, all 256 values, both ways.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if n, err := l.Write(all); err != nil || n != len(all) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readN(t, vm, len(all)); got != string(all) {
		t.Errorf("VM got %q", got)
	}
	if _, err := vm.Write([]byte("\x30\x30\x30\x30pong")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, l, 8); got != "0000pong" {
		t.Errorf("link got %q", got)
	}

	// A read deadline expires with an os.ErrDeadlineExceeded timeout.
	if err := l.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read past the deadline = %v, want a timeout", err)
	}
	if _, err := vm.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, l, 1); got != "x" {
		t.Errorf("after a timeout the link got %q", got)
	}

	// Without reconnect, the VM going away is end of file.
	_ = vm.Close()
	if err := l.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after the VM closed = %d, %v; want 0, io.EOF", n, err)
	}
	if rc, ok := l.(Reconnecter); !ok || rc.Reconnects() != 0 {
		t.Errorf("Reconnects() missing or not 0")
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := l.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := l.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v, want net.ErrClosed", err)
	}
}

func TestPipeWriteDeadline(t *testing.T) {
	t.Parallel()
	for _, opt := range []string{"", ",reconnect"} {
		l, srv, _ := openVM(t, opt, "")
		srv.accept(t) // never reads: the socket buffer fills up
		if err := l.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 64<<10)
		var werr error
		for i := 0; i < 1024 && werr == nil; i++ { // at most 64 MiB
			_, werr = l.Write(chunk)
		}
		if !errors.Is(werr, os.ErrDeadlineExceeded) {
			t.Errorf("%q: Write to a stalled VM = %v, want a timeout", opt, werr)
		}
		_ = l.Close()
	}
}

func TestPipeMissing(t *testing.T) {
	t.Parallel()
	sock, allow := pipeSetup(t)
	_, err := OpenStream(openCtx(t), target(t, "com:pipe,port="+sock), allow)
	if err == nil || !strings.Contains(err.Error(), "no VM is serving "+sock) || !strings.Contains(err.Error(), ",reconnect") {
		t.Errorf("OpenStream(missing socket) = %v, want a hint to start the VM or add reconnect", err)
	}
	// A socket file left behind by a VM that stopped.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	_, err = OpenStream(openCtx(t), target(t, "com:pipe,port="+sock), allow)
	if err == nil || !strings.Contains(err.Error(), "nothing listens on "+sock) {
		t.Errorf("OpenStream(stale socket) = %v, want 'nothing listens'", err)
	}
	// With reconnect, Open waits, bounded by its context.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = OpenStream(ctx, target(t, "com:pipe,port="+sock+",reconnect"), allow)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waited for the VM") {
		t.Errorf("OpenStream(reconnect, nobody serving) = %v, want a timeout while waiting", err)
	}
	// A Windows pipe name is refused with a pointer to the socket path.
	_, err = OpenStream(openCtx(t), target(t, `com:pipe,port=\\.\pipe\vm`), allow)
	if err == nil || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf(`OpenStream(\\.\pipe\vm) = %v, want a hint at unix sockets`, err)
	}
}

func TestPipeReconnect(t *testing.T) {
	t.Parallel()
	l, srv, sock := openVM(t, ",reconnect", "one")
	vm1 := srv.accept(t)
	if got := readN(t, l, 3); got != "one" {
		t.Fatalf("first connection: got %q", got)
	}
	reconnected := l.(Reconnecter).Reconnected()
	select {
	case <-reconnected:
		t.Fatal("Reconnected() fired before any reconnection")
	default:
	}

	// The VM goes away: the socket closes and its file disappears.
	srv.leave(vm1)
	// Reads wait (and time out), writes are discarded, nothing fails.
	if err := l.SetReadDeadline(time.Now().Add(150 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read while the VM is away = %v, want a timeout", err)
	}
	if n, err := l.Write([]byte("lost")); n != 4 || err != nil {
		t.Errorf("Write while the VM is away = %d, %v; want 4, nil", n, err)
	}

	// The VM comes back on the same path 300 ms later.
	time.Sleep(300 * time.Millisecond)
	srv2 := serveVM(t, sock, "two")
	if got := readN(t, l, 3); got != "two" {
		t.Fatalf("after the reconnection: got %q", got)
	}
	vm2 := srv2.accept(t)
	if rc := l.(Reconnecter).Reconnects(); rc != 1 {
		t.Errorf("Reconnects() = %d, want 1", rc)
	}
	select {
	case <-reconnected:
	default:
		t.Error("the channel from Reconnected() was not closed by the reconnection")
	}
	select {
	case <-l.(Reconnecter).Reconnected():
		t.Error("Reconnected() after the reconnection returned a closed channel")
	default:
	}
	if _, err := l.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, vm2, 5); got != "after" {
		t.Errorf("new VM connection got %q, want only what was written after reconnecting", got)
	}
}

func TestPipeCloseDuringReconnect(t *testing.T) {
	t.Parallel()
	l, srv, _ := openVM(t, ",reconnect", "")
	srv.leave(srv.accept(t))
	readErr := make(chan error, 1)
	go func() {
		_, err := l.Read(make([]byte, 1)) // no deadline: waits for the VM
		readErr <- err
	}()
	time.Sleep(100 * time.Millisecond) // let Read find the VM gone
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return during a reconnection wait")
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("pending Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("pending Read was not unblocked by Close")
	}
}

func TestPipeOpenWaitsForVM(t *testing.T) {
	t.Parallel()
	sock, allow := pipeSetup(t)
	type result struct {
		l   Stream
		err error
	}
	opened := make(chan result, 1)
	go func() {
		l, err := OpenStream(openCtx(t), target(t, "com:pipe,port="+sock+",reconnect"), allow)
		opened <- result{l, err}
	}()
	time.Sleep(200 * time.Millisecond)
	srv := serveVM(t, sock, "hello")
	var r result
	select {
	case r = <-opened:
	case <-time.After(wait):
		t.Fatal("Open did not return after the VM started")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Close()
	srv.accept(t)
	if got := readN(t, r.l, 5); got != "hello" {
		t.Errorf("got %q", got)
	}
	if rc := r.l.(Reconnecter).Reconnects(); rc != 0 {
		t.Errorf("Reconnects() = %d after waiting at Open, want 0", rc)
	}
}

// TestPipeRedialRechecks proves that a redial does not follow a symbolic
// link planted at the socket path while the VM was away.
func TestPipeRedialRechecks(t *testing.T) {
	t.Parallel()
	l, srv, sock := openVM(t, ",reconnect", "")
	srv.leave(srv.accept(t))
	outside := filepath.Join(t.TempDir(), "evil.sock")
	evil := serveVM(t, outside, "evil")
	mustSymlink(t, outside, sock)
	if err := l.SetReadDeadline(time.Now().Add(1500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	n, err := l.Read(b)
	if !errors.Is(err, os.ErrDeadlineExceeded) || bytes.Contains(b[:n], []byte("evil")) {
		t.Errorf("Read = %q, %v; want a timeout and nothing from outside the allowed directory", b[:n], err)
	}
	select {
	case <-evil.conns:
		t.Error("the link dialled a socket outside the allow-list")
	default:
	}
}
