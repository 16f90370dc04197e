//go:build linux || darwin

package sim

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kdsrv/internal/serial"
	"kdsrv/internal/testkit"
)

func TestParseSerial(t *testing.T) {
	good := []struct {
		in     string
		device string
		baud   int
	}{
		{"/dev/ttyS0", "/dev/ttyS0", DefaultSerialBaud},
		{"/dev/ttyS0,baud=921600", "/dev/ttyS0", 921600},
		{"COM3,BAUD=9600", "COM3", 9600},
	}
	for _, c := range good {
		d, b, err := ParseSerial(c.in)
		if err != nil || d != c.device || b != c.baud {
			t.Errorf("ParseSerial(%q) = %q, %d, %v; want %q, %d", c.in, d, b, err, c.device, c.baud)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "name the device"},
		{",baud=9600", "name the device"},
		{"/dev/ttyS0,baud=fast", "not a rate"},
		{"/dev/ttyS0,baud=0", "not a rate"},
		{"/dev/ttyS0,parity=even", "unknown option"},
	} {
		if _, _, err := ParseSerial(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSerial(%q) error %v; want one containing %q", c.in, err, c.want)
		}
	}
	if n, a, err := ParsePort("serial:/dev/ttyS0,baud=57600"); err != nil || n != NetworkSerial || a != "/dev/ttyS0,baud=57600" {
		t.Errorf("ParsePort(serial:...) = %q, %q, %v", n, a, err)
	}
	if _, _, err := ParsePort("serial:"); err == nil {
		t.Error("ParsePort(serial:) accepted an empty device")
	}
}

// dupMaster is a new descriptor for the pty master, so a debugger that
// quits closes its own (which stops its reader at once) and not the line.
func dupMaster(t *testing.T, master *os.File) *os.File {
	t.Helper()
	var fd int
	err := serial.WithFd(master, func(f int) (err error) {
		fd, err = unix.Dup(f)
		return err
	})
	if err != nil {
		t.Fatalf("dup the pty master: %v", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "ptmx")
}

// The target serves a serial device (here the slave of a pseudo-terminal,
// which the serial package opens like a UART); debuggers on the other end
// come and go on the same line, each attaching with break-in and RESET,
// and find the state the last one left.
func TestServeSerial(t *testing.T) {
	master, slave, err := serial.OpenPTY()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer master.Close()
	tgt := New(Config{})
	var log logLines
	addr, stop := startEndpoint(t, func(ctx context.Context, o PortOptions) error {
		return ServeSerial(ctx, tgt, slave, 115200, o)
	}, PortOptions{Logger: log.logger(), RedialMin: 10 * time.Millisecond, RedialMax: 20 * time.Millisecond})
	if want := "serial:" + slave + ",baud=115200"; addr != want {
		t.Fatalf("Ready(%q); want %q", addr, want)
	}
	written := []byte("left by the first debugger")
	for round := 1; round <= 2; round++ {
		h := fastHost(t, dupMaster(t, master))
		attachAndRead(t, tgt, h)
		ctx := ctxT(t)
		if round == 1 {
			if _, err := h.WriteVirtual(ctx, DataBase, written); err != nil {
				t.Fatalf("write: %v", err)
			}
		} else if got, err := h.ReadVirtual(ctx, DataBase, len(written)); err != nil || string(got) != string(written) {
			t.Fatalf("second debugger reads %q, %v; want %q", got, err, written)
		}
		h.Link().Close()
	}
	// One connection (the serial line stays open while debuggers come and
	// go) and no corrupt bytes. Retransmissions are allowed: a RESET that
	// arrives while the target's state change waits for its ACK (a loaded
	// machine) makes the target send it again, as a kernel does.
	if st := tgt.Stats(); st.Connections != 1 || st.Link.Corrupt != 0 {
		t.Errorf("target stats %+v; want one connection (a serial line) and no corrupt packets", st)
	}
	// The device going away (the master closes: the slave hangs up) is not
	// the end: the target logs it and keeps trying to open the device.
	master.Close()
	testkit.WaitFor(t, "the reopen attempt", func() bool { return log.count("opening it again") >= 1 })
	stop()
}

func TestServeSerialMissingDevice(t *testing.T) {
	err := ServeSerial(ctxT(t), New(Config{}), "/dev/kdsrv-no-such-tty", 115200, PortOptions{})
	if err == nil || !strings.Contains(err.Error(), "serial:/dev/kdsrv-no-such-tty") {
		t.Fatalf("ServeSerial on a missing device: %v; want an error naming it", err)
	}
}
