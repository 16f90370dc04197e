package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"go.uber.org/goleak"

	"kdsrv/internal/commux"
	"kdsrv/internal/spec"
)

// comNoLeaks checks, after every other cleanup of t, that the goroutines of
// the test (multiplexers, relays) are gone.
func comNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// comFakeDevice names a device path that suits this GOOS.
func comFakeDevice(name string) string {
	if runtime.GOOS == "windows" {
		return `\\.\` + name
	}
	return "/dev/" + name
}

// comFakeLine is a "null-modem cable" between two fake devices: the
// COMPorts' Open is replaced so that opening either path returns its end of an in-memory
// pipe. It counts opens and closes per path.
type comFakeLine struct {
	mu     sync.Mutex
	ends   map[string]io.ReadWriteCloser
	peer   map[string]string
	opens  map[string]int
	closes map[string]int
	bauds  map[string]int
}

func newCOMFakeLine(t *testing.T, ports *COMPorts, a, b string) *comFakeLine {
	l := &comFakeLine{
		ends:   map[string]io.ReadWriteCloser{},
		peer:   map[string]string{a: b, b: a},
		opens:  map[string]int{},
		closes: map[string]int{},
		bauds:  map[string]int{},
	}
	ports.Open = l.open
	return l
}

// open returns a fresh pipe end; a reopened end gets a new pipe whose
// other end replaces the peer's (which then sees its line fail, as after
// a real cable swap), so tests reopen both sides together.
func (l *comFakeLine) open(path string, baud int) (io.ReadWriteCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.peer[path]
	if !ok {
		return nil, fmt.Errorf("serial: open %s: no such file or directory", path)
	}
	l.opens[path]++
	l.bauds[path] = baud
	if e := l.ends[path]; e != nil {
		delete(l.ends, path)
		return &comCountedEnd{ReadWriteCloser: e, l: l, path: path}, nil
	}
	x, y := net.Pipe()
	l.ends[p] = y
	return &comCountedEnd{ReadWriteCloser: x, l: l, path: path}, nil
}

func (l *comFakeLine) counts(path string) (opens, closes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opens[path], l.closes[path]
}

type comCountedEnd struct {
	io.ReadWriteCloser
	l    *comFakeLine
	path string
	once sync.Once
}

func (e *comCountedEnd) Close() error {
	e.once.Do(func() {
		e.l.mu.Lock()
		e.l.closes[e.path]++
		e.l.mu.Unlock()
	})
	return e.ReadWriteCloser.Close()
}

func comFast(ports *COMPorts) {
	ports.Config = commux.Config{RetransmitTimeout: 50 * time.Millisecond, KeepAlive: -1}
}

// comRig is the set-up of most COM tests: fast timers, a fake cable between
// a server device and a client device (named after n, so tests do not
// share devices), and a check that no goroutine outlives the test.
type comRig struct {
	ports    *COMPorts
	srv, cli string
	line     *comFakeLine
}

func newCOMRig(t *testing.T, n int) *comRig {
	r := &comRig{ports: &COMPorts{}, srv: comFakeDevice(fmt.Sprintf("kdfakeS%d", n)), cli: comFakeDevice(fmt.Sprintf("kdfakeC%d", n))}
	comNoLeaks(t)
	comFast(r.ports)
	r.line = newCOMFakeLine(t, r.ports, r.srv, r.cli)
	return r
}

// listen opens channel ch of the server device at 115200 baud.
func (r *comRig) listen(t *testing.T, ch int) Listener {
	t.Helper()
	ln, err := Listen(context.Background(), serverT(t, fmt.Sprintf("com:port=%s,baud=115200,channel=%d", r.srv, ch)), Options{COM: r.ports})
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dial connects to channel ch over the client device at 115200 baud.
func (r *comRig) dial(ctx context.Context, t *testing.T, ch int) (net.Conn, error) {
	return (&Dialer{COM: r.ports}).Dial(ctx, clientT(t, fmt.Sprintf("com:port=%s,baud=115200,channel=%d", r.cli, ch)))
}

// comEchoServe answers the connections of ln with an echo, one at a time,
// until ln closes (when the test ends).
func comEchoServe(t *testing.T, ln Listener) {
	testkit.Accept(t, ln, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(c, c)
	})
}

func TestCOMDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"com:port=com2,baud=115200,channel=3", "com:port=COM2,baud=115200,channel=3"},
		{"com:port=2,baud=9600,channel=0,hidden,password=s3cret", "com:port=COM2,baud=9600,channel=0"},
		{"COM:PORT=COM10,BAUD=57600,CHANNEL=254", "com:port=COM10,baud=57600,channel=254"},
		{"com:port=/dev/ttyUSB0,baud=921600,channel=17", "com:port=/dev/ttyUSB0,baud=921600,channel=17"},
	}
	for _, tt := range tests {
		if got := comDisplay(serverT(t, tt.in)); got != tt.want {
			t.Errorf("%s: display %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCOMChannelRange: the grammar refuses channels outside 0-254, on
// both sides, before any device is opened.
func TestCOMChannelRange(t *testing.T) {
	for _, ch := range []string{"-1", "255", "256", "x"} {
		if _, err := spec.ParseServerTransport("com:port=COM1,baud=115200,channel=" + ch); err == nil {
			t.Errorf("server channel=%s accepted", ch)
		}
		if _, err := spec.ParseClientTransport("com:port=COM1,baud=115200,channel=" + ch); err == nil {
			t.Errorf("client channel=%s accepted", ch)
		}
	}
}

// TestCOMSharedPort: three channels of one kdsrv share one open device;
// a client process shares its device the same way; each channel carries
// its own stream; the device closes when its last user goes.
func TestCOMSharedPort(t *testing.T) {
	r := newCOMRig(t, 0)
	srvDev, cliDev, line := r.srv, r.cli, r.line
	var lns []Listener
	for _, ch := range []int{3, 7, 254} {
		ln := r.listen(t, ch)
		if want := fmt.Sprintf("com:port=%s,baud=115200,channel=%d", srvDev, ch); ln.Display() != want {
			t.Errorf("display %q, want %q", ln.Display(), want)
		}
		if want := fmt.Sprintf("com:%s#%d", srvDev, ch); ln.Addr().String() != want || ln.Addr().Network() != "com" {
			t.Errorf("addr %s %q, want %q", ln.Addr().Network(), ln.Addr(), want)
		}
		lns = append(lns, ln)
	}
	if o, _ := line.counts(srvDev); o != 1 {
		t.Fatalf("server device opened %d times for three channels, want 1", o)
	}
	for _, ln := range lns {
		comEchoServe(t, ln)
	}
	var conns []net.Conn
	for _, ch := range []int{3, 7, 254} {
		c, err := r.dial(context.Background(), t, ch)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if o, _ := line.counts(cliDev); o != 1 {
		t.Fatalf("client device opened %d times for three dials, want 1", o)
	}
	concurrently(t, len(conns), func(i int) error {
		c := conns[i]
		msg := []byte(strings.Repeat(fmt.Sprintf("channel %d says hello; ", i), 500))
		go func() { _, _ = c.Write(msg) }()
		got := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("conn %d: %w", i, err)
		}
		if string(got) != string(msg) {
			return fmt.Errorf("conn %d: echo differs", i)
		}
		return nil
	})
	if st := conns[0].(COMLine).LineStats(); st.FramesSent == 0 || st.FramesReceived == 0 {
		t.Errorf("line stats %+v", st)
	}
	for i, c := range conns {
		if err := c.Close(); err != nil {
			t.Errorf("close %d: %v", i, err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second close %d: %v", i, err)
		}
		_, closes := line.counts(cliDev)
		if want := 0; i == len(conns)-1 {
			want = 1
			if closes != want {
				t.Errorf("after the last client connection closed, client device closed %d times, want %d", closes, want)
			}
		} else if closes != want {
			t.Errorf("client device closed with %d connections still open", len(conns)-1-i)
		}
	}
}

// TestCOMAcceptedOutlivesListener: closing the listener (kdsrv shutting
// down) keeps accepted connections working; the device closes after the
// last of them.
func TestCOMAcceptedOutlivesListener(t *testing.T) {
	r := newCOMRig(t, 1)
	srvDev, line := r.srv, r.line
	ln := r.listen(t, 5)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	cc, err := r.dial(context.Background(), t, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, closes := line.counts(srvDev); closes != 0 {
		t.Fatal("device closed under an accepted connection")
	}
	if _, err := sc.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	buf := make([]byte, 3)
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "bye" {
		t.Fatalf("data written before the last close was lost: %q %v", buf, err)
	}
	if _, closes := line.counts(srvDev); closes != 1 {
		t.Fatalf("server device closed %d times after its last user, want 1", closes)
	}
}

// TestCOMListenErrors: conflicting transports of one kdsrv are refused
// with a message naming the fix; a released port can be taken again.
func TestCOMListenErrors(t *testing.T) {
	r := newCOMRig(t, 2)
	ports, srvDev, line := r.ports, r.srv, r.line
	ctx := context.Background()
	first := r.listen(t, 1)
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"same channel", "com:port=" + srvDev + ",baud=115200,channel=1", []string{"channel 1 of " + srvDev + " is given twice", "its own channel"}},
		{"other baud", "com:port=" + srvDev + ",baud=9600,channel=2", []string{"already open at 115200 baud", "use baud=115200"}},
		{"no device", "com:port=" + comFakeDevice("kdmissing") + ",baud=115200,channel=1", []string{"com transport com:port=" + comFakeDevice("kdmissing"), "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen(ctx, serverT(t, tt.spec), Options{COM: ports})
			if err == nil {
				ln.Close()
				t.Fatal("accepted")
			}
			errSays(t, err, tt.want...)
		})
	}
	if o, c := line.counts(srvDev); o != 1 || c != 0 {
		t.Fatalf("refused transports changed the open port: opens %d closes %d", o, c)
	}
	first.Close()
	if _, c := line.counts(srvDev); c != 1 {
		t.Fatalf("port not closed with its last listener")
	}
	again, err := Listen(ctx, serverT(t, "com:port="+srvDev+",baud=9600,channel=1"), Options{COM: ports})
	if err != nil {
		t.Fatalf("port not free after its last listener closed: %v", err)
	}
	again.Close()
}

// TestCOMDialErrors: what a client is told when nobody listens on its
// channel, when nothing answers at all, and when its device is missing.
func TestCOMDialErrors(t *testing.T) {
	r := newCOMRig(t, 3)
	ports, cliDev, line := r.ports, r.cli, r.line
	ctx := context.Background()
	comEchoServe(t, r.listen(t, 3))

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := r.dial(dctx, t, 7)
	if !errors.Is(err, commux.ErrNoListener) {
		t.Fatalf("dial of an unused channel: %v", err)
	}
	errSays(t, err, "no kdsrv listening on COM channel 7 of "+cliDev, "-t com:port=...,baud=115200,channel=7")
	if o, c := line.counts(cliDev); o != 1 || c != 1 {
		t.Errorf("failed dial left the device open: opens %d closes %d", o, c)
	}

	// Nothing answers: the far end of the cable is open but mute.
	mute := comFakeDevice("kdmute")
	other := newCOMFakeLine(t, ports, mute, comFakeDevice("kdmutepeer"))
	far, err := other.open(comFakeDevice("kdmutepeer"), 115200)
	if err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { defer close(drained); _, _ = io.Copy(io.Discard, far) }()
	dctx2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	_, err = (&Dialer{COM: ports}).Dial(dctx2, clientT(t, "com:port="+mute+",baud=57600,channel=9"))
	far.Close()
	<-drained
	if err == nil {
		t.Fatal("dial over a mute line succeeded")
	}
	errSays(t, err, "no kdsrv answered on COM channel 9 of "+mute, "both sides use baud=57600", "-t com:port=...,baud=57600,channel=9")

	_, err = (&Dialer{COM: ports}).Dial(ctx, clientT(t, "com:port="+comFakeDevice("kdnothere")+",baud=115200,channel=1"))
	if err == nil || !strings.Contains(err.Error(), "cannot reach kdsrv over "+comFakeDevice("kdnothere")) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing device: %v", err)
	}
}

// TestCOMDeviceNames: COMn spellings map to the platform's device, and
// messages show both.
func TestCOMDeviceNames(t *testing.T) {
	ports := &COMPorts{}
	if runtime.GOOS != "linux" {
		t.Skip("COMn numbering checked on Linux")
	}
	var opened []string
	ports.Open = func(path string, baud int) (io.ReadWriteCloser, error) {
		opened = append(opened, path)
		return nil, errors.New("not here")
	}
	for _, p := range []string{"COM2", "com2", "2"} {
		_, err := Listen(context.Background(), serverT(t, "com:port="+p+",baud=115200,channel=0"), Options{COM: ports})
		if err == nil || !strings.Contains(err.Error(), "com:port=COM2,baud=115200,channel=0") {
			t.Errorf("%s: %v", p, err)
		}
		_, err = (&Dialer{COM: ports}).Dial(context.Background(), clientT(t, "com:port="+p+",baud=115200,channel=0"))
		if err == nil || !strings.Contains(err.Error(), "COM2 (/dev/ttyS1)") {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, o := range opened {
		if o != "/dev/ttyS1" {
			t.Errorf("opened %s, want /dev/ttyS1", o)
		}
	}
}

// TestCOMLineFailure: when the serial line itself fails, Accept returns a
// permanent error that names the port and says what to do (kdsrv then
// stops), not the net.ErrClosed of an orderly close.
func TestCOMLineFailure(t *testing.T) {
	r := newCOMRig(t, 4)
	ln := r.listen(t, 1)
	defer ln.Close()
	far, err := r.line.open(r.cli, 115200)
	if err != nil {
		t.Fatal(err)
	}
	far.Close() // the cable is cut: the server reads EOF
	_, err = ln.Accept()
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept on a failed line: %v", err)
	}
	errSays(t, err, "serial line "+r.srv+" failed", "restart kdsrv")
	if !errors.Is(err, commux.ErrMuxClosed) {
		t.Errorf("error does not wrap commux.ErrMuxClosed: %v", err)
	}
}
