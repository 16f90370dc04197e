package targetlink

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpVM listens on a loopback TCP port like a VM's serial-over-TCP
// endpoint; the channel yields the one connection accepted (nil if
// accepting failed).
func tcpVM(t *testing.T) (port string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			ch <- c
		}
		close(ch)
	}()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), ch
}

func TestIPPort(t *testing.T) {
	t.Parallel()
	port, accepted := tcpVM(t)
	allow := mustAllow(t, []string{"localhost:*"}, true)
	l := mustOpenStream(t, "com:ipport="+port+",port=127.0.0.1", allow)
	if got, want := l.String(), "ipport 127.0.0.1:"+port; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var vm net.Conn
	select {
	case vm = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
	if vm == nil {
		t.Fatal("accept failed")
	}
	defer vm.Close()
	// Telnet's IAC (0xff) and CR/LF pass untouched: no negotiation, no translation.
	raw := []byte{0xff, 0xfb, 0x01, '\r', '\n', 0x00, 0x30, 0x30, 0x30, 0x30}
	if _, err := l.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = vm.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(raw))
	if _, err := io.ReadFull(vm, got); err != nil || string(got) != string(raw) {
		t.Errorf("VM got %x, %v; want %x", got, err, raw)
	}
	if _, err := vm.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(l, got); err != nil || string(got) != string(raw) {
		t.Errorf("link got %x, %v; want %x", got, err, raw)
	}
	_ = vm.Close()
	if _, err := l.Read(got); err != io.EOF {
		t.Errorf("Read after the VM closed = %v, want io.EOF", err)
	}
}

func TestIPPortRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close() // nothing listens there any more
	allow := mustAllow(t, []string{"127.0.0.1:*"}, false)
	_, err = OpenStream(openCtx(t), target(t, "com:ipport="+port+",port=127.0.0.1"), allow)
	for _, want := range []string{"ipport 127.0.0.1:" + port, "nothing accepts connections", "-serial tcp::" + port} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenStream(refused port) = %v, want it to contain %q", err, want)
		}
	}
}

func TestOpenRefusals(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	netOK := mustAllow(t, []string{"net:*"}, false)
	tests := []struct {
		name, trans string
		allow       *AllowList
		notAllowed  bool
		frag        string
	}{
		{"default refuses pipes", "com:pipe,port=/tmp/kd-test.sock", nil, true, "-allow '/tmp/kd-test.sock'"},
		{"default refuses ipport", "com:ipport=5555,port=127.0.0.1", nil, true, "-allow '127.0.0.1:5555'"},
		{"kdnet has no stream", "net:port=50000,key=1.2.3.4", netOK, false, "not a byte stream"},
		{"kdnet refused first", "net:port=50000,key=1.2.3.4", nil, true, "-allow 'net:50000'"},
		{"incomplete", "com:", nil, false, "_NT_DEBUG_PORT"},
		{"no baud", "com:port=/dev/ttyS0", nil, false, "baud"},
	}
	for _, tc := range tests {
		l, err := OpenStream(ctx, target(t, tc.trans), tc.allow)
		if err == nil {
			_ = l.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		var na *NotAllowedError
		if errors.As(err, &na) != tc.notAllowed || !strings.Contains(err.Error(), tc.frag) {
			t.Errorf("%s: Open = %v; want NotAllowed=%v containing %q", tc.name, err, tc.notAllowed, tc.frag)
		}
	}
	if _, err := OpenStream(ctx, nil, nil); err == nil {
		t.Error("OpenStream(nil target) succeeded")
	}
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	ipOK, _ := NewAllowList([]string{"127.0.0.1:*"}, false)
	if _, err := OpenStream(done, target(t, "com:ipport=9,port=127.0.0.1"), ipOK); !errors.Is(err, context.Canceled) && (err == nil || !strings.Contains(err.Error(), "canceled")) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
}
