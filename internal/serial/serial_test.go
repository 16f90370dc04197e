//go:build linux || darwin

package serial_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
	"kdsrv/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openPair opens a pty and returns its master and the slave opened through
// serial.Open. Everything is closed when the test ends.
func openPair(t *testing.T, baud int) (*os.File, *serial.Port) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	master = pollable(t, master)
	t.Cleanup(func() { master.Close(); slave.Close() })
	p, err := serial.Open(slave.Name(), baud)
	if err != nil {
		t.Fatalf("Open(%s, %d): %v", slave.Name(), baud, err)
	}
	t.Cleanup(func() { p.Close() })
	return master, p
}

// pollable returns a non-blocking replacement for f that the runtime poller
// manages, so that deadlines work on it; f is closed.
func pollable(t *testing.T, f *os.File) *os.File {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	rc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) })
	if derr != nil {
		t.Fatalf("dup: %v", derr)
	}
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatalf("set non-blocking: %v", err)
	}
	return os.NewFile(uintptr(fd), "pty-master")
}

// readFull reads exactly n bytes from r within a generous time bound.
func readFull(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, n int) []byte {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return buf
}

// expectSilence asserts that nothing arrives on r for a short while.
func expectSilence(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, what string) {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(150 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	var b [64]byte
	n, err := r.Read(b[:])
	if n > 0 {
		t.Fatalf("%s: unexpected bytes %q", what, b[:n])
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: want deadline exceeded, got %v", what, err)
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestRawBytesPassUnchanged(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"all 256 byte values", allBytes()},
		{"CR LF kept apart", []byte("a\r\nb\rc\n")},
		{"signal characters are data", []byte{0x03, 0x1a, 0x1c, 0x7f}}, // ^C ^Z ^\ DEL
		{"flow control characters are data", []byte{0x11, 0x13, 0x11}}, // XON XOFF XON
		{"EOF and erase are data", []byte{0x04, 0x08, 0x15, 0x17}},     // ^D ^H ^U ^W
		{"KDCOM leader", []byte{0x30, 0x30, 0x30, 0x30, 0x69, 0x69, 0x69, 0x69, 0x62, 0xaa}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			master, p := openPair(t, 115200)
			// master -> port (input processing of the line discipline)
			if _, err := master.Write(tc.data); err != nil {
				t.Fatalf("master write: %v", err)
			}
			if got := readFull(t, p, len(tc.data)); !bytes.Equal(got, tc.data) {
				t.Fatalf("port read % x, want % x", got, tc.data)
			}
			// no echo back to the master
			expectSilence(t, master, "echo")
			// port -> master (output processing)
			if _, err := p.Write(tc.data); err != nil {
				t.Fatalf("port write: %v", err)
			}
			if got := readFull(t, master, len(tc.data)); !bytes.Equal(got, tc.data) {
				t.Fatalf("master read % x, want % x", got, tc.data)
			}
			expectSilence(t, p, "stray input")
		})
	}
}

func TestLargeTransfer(t *testing.T) {
	master, p := openPair(t, 115200)
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := master.Write(data)
		errc <- err
	}()
	got := readFull(t, p, len(data))
	if err := <-errc; err != nil {
		t.Fatalf("master write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted in transit")
	}
}

func TestTermiosSettings(t *testing.T) {
	cases := []int{9600, 115200, 250000, 921600, 3000000}
	for _, baud := range cases {
		t.Run("", func(t *testing.T) {
			master, slave, err := pty.Open()
			if err != nil {
				t.Skipf("no pseudo-terminals: %v", err)
			}
			defer master.Close()
			defer slave.Close()
			p, err := serial.Open(slave.Name(), baud)
			if err != nil {
				t.Fatalf("Open at %d: %v", baud, err)
			}
			defer p.Close()
			if p.Baud() != baud || p.Name() != slave.Name() {
				t.Fatalf("Name/Baud = %q/%d", p.Name(), p.Baud())
			}
			tio := getTermios(t, slave)
			checkRaw(t, tio)
			if got := speedOf(tio); got != baud {
				t.Fatalf("device speed %d, want %d", got, baud)
			}
		})
	}
}

func checkRaw(t *testing.T, tio *unix.Termios) {
	t.Helper()
	if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG|unix.IEXTEN) != 0 {
		t.Errorf("local flags not raw: %#x", tio.Lflag)
	}
	if tio.Iflag&(unix.ICRNL|unix.INLCR|unix.IGNCR|unix.IXON|unix.IXOFF|unix.ISTRIP) != 0 {
		t.Errorf("input flags not raw: %#x", tio.Iflag)
	}
	if tio.Oflag&unix.OPOST != 0 {
		t.Errorf("output post-processing on: %#x", tio.Oflag)
	}
	if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&(unix.PARENB|unix.CSTOPB|unix.CRTSCTS) != 0 {
		t.Errorf("not 8N1 without flow control: %#x", tio.Cflag)
	}
	if tio.Cflag&(unix.CREAD|unix.CLOCAL) != unix.CREAD|unix.CLOCAL {
		t.Errorf("receiver off or modem lines honoured: %#x", tio.Cflag)
	}
}

func TestReadDeadline(t *testing.T) {
	master, p := openPair(t, 115200)
	var b [16]byte

	// A deadline in the past fails at once.
	if err := p.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := p.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("past deadline took %v", el)
	}

	// A near deadline fires while the read is pending.
	if err := p.SetDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pending read: got %v", err)
	}

	// Clearing the deadline makes the port usable again.
	if err := p.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, p, 2); string(got) != "ok" {
		t.Fatalf("after deadline reset read %q", got)
	}

	// Write deadline in the past.
	if err := p.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past write deadline: got %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	_, p := openPair(t, 115200)
	errc := make(chan error, 1)
	go func() {
		var b [8]byte
		_, err := p.Read(b[:])
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read block (not required for correctness)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("pending read returned %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := p.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFlushDiscardsInput(t *testing.T) {
	master, p := openPair(t, 115200)
	if _, err := master.Write([]byte("stale bytes")); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded) until the line discipline has queued the input.
	fd := slaveFd(t, p)
	testkit.WaitFor(t, "the input to arrive", func() bool {
		n, err := unix.IoctlGetInt(fd, inqRequest)
		if err != nil {
			t.Fatalf("input queue size: %v", err)
		}
		return n > 0
	})
	if err := p.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	expectSilence(t, p, "after Flush")
	if err := p.Drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// slaveFd opens the port's device a second time (read-only, just for
// ioctls) and returns that descriptor.
func slaveFd(t *testing.T, p *serial.Port) int {
	t.Helper()
	fd, err := unix.Open(p.Name(), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			t.Skip("exclusive mode keeps this non-root test from inspecting the port")
		}
		t.Fatalf("open for inspection: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "not-a-tty")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		path     string
		baud     int
		wantErr  error
		wantText []string
	}{
		{"missing device", filepath.Join(dir, "ttyS99"), 115200, unix.ENOENT, []string{"open", "ttyS99", "serial devices"}},
		{"not a tty", regular, 115200, unix.ENOTTY, []string{"not a serial device"}},
		{"zero baud", regular, 0, serial.ErrBaudRate, []string{"positive"}},
		{"empty name", "", 9600, nil, []string{"empty device name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := serial.Open(tc.path, tc.baud)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			var se *serial.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not *serial.Error: %v", err, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}
