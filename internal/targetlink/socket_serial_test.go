//go:build unix

package targetlink

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSerialNamingASocket: com:port= naming a unix socket (a VM's serial
// port) is refused with the com:pipe form to use instead.
func TestSerialNamingASocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	allow := mustAllow(t, []string{filepath.Join(dir, "*")}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := OpenStream(ctx, target(t, "com:port="+sock+",baud=115200"), allow)
	if err == nil {
		l.Close()
		t.Fatal("a socket opened as a serial device")
	}
	if want := "trans=@{com:pipe,port=" + sock + "}"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not suggest %s", err, want)
	}
}
