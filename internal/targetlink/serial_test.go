//go:build linux || darwin

package targetlink

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestSerialPty opens the slave side of a pseudo-terminal as a serial target
// and checks that every byte value passes raw in both directions.
func TestSerialPty(t *testing.T) {
	t.Parallel()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	dev := slave.Name()
	allow := mustAllow(t, []string{dev}, true)
	l := mustOpenStream(t, "com:port="+dev+",baud=115200", allow)
	if got, want := l.String(), "serial "+dev+" @115200"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if _, err := l.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(all))
	if err := readFullTimeout(master, got); err != nil || string(got) != string(all) {
		t.Errorf("master got %x, %v", got, err)
	}
	if _, err := master.Write(all); err != nil {
		t.Fatal(err)
	}
	if err := l.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(l, got); err != nil || string(got) != string(all) {
		t.Errorf("link got %x, %v", got, err)
	}
	// Read deadlines work on the device too.
	if err := l.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(got); !os.IsTimeout(err) {
		t.Errorf("Read past the deadline = %v, want a timeout", err)
	}
}

// readFullTimeout reads len(b) bytes from a pty master, giving up after a
// few seconds (the master file has no deadlines on every platform).
func readFullTimeout(f *os.File, b []byte) error {
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(f, b)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		_ = f.Close() // unblocks the reader
		<-done
		return os.ErrDeadlineExceeded
	}
}

func TestSerialMissingDevice(t *testing.T) {
	t.Parallel()
	_, err := OpenStream(openCtx(t), target(t, "com:port=/dev/ttyS250,baud=115200"), nil)
	if err == nil || !strings.Contains(err.Error(), `target "serial /dev/ttyS250 @115200": cannot open the serial device`) {
		t.Errorf("OpenStream(missing device) = %v, want an error naming the target", err)
	}
}
