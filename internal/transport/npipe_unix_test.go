//go:build unix

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"go.uber.org/goleak"
)

// The pipe tests set KDSRV_PIPE_DIR and KDSRV_PIPE_MODE, so none of them
// runs in parallel.

// pipeTestDir points both sides at a fresh, short directory (unix socket
// paths are limited to about 100 bytes).
func pipeTestDir(t *testing.T) string {
	t.Helper()
	d := testkit.ShortDir(t)
	t.Setenv(PipeDirEnv, d)
	t.Setenv(PipeModeEnv, "")
	return d
}

// echoOnce accepts one connection on ln and echoes what it reads until EOF.
func echoOnce(ln net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(c, c)
		done <- err
	}()
	return done
}

// roundTrip writes msg on c and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("read back %q, want %q", got, msg)
	}
}

// TestPipeListenDial: %d_%x expand, the socket has mode 0600 in the pipe
// directory, a client reaches it by name (any case), and Close removes it.
func TestPipeListenDial(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := pipeTestDir(t)
	ln, err := Listen(context.Background(), serverT(t, "npipe:pipe=Kd_%d_%x"), Options{PID: 1234, TID: 0x1f})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ln.Display(), "npipe:pipe=Kd_1234_1f"; got != want {
		t.Errorf("display %q, want %q", got, want)
	}
	path := filepath.Join(dir, "kd_1234_1f")
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&fs.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", st.Mode())
	}
	for _, name := range []string{"Kd_1234_1f", "KD_1234_1F"} {
		done := echoOnce(ln)
		c, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, `npipe:server=\\.,pipe=`+name))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "hello over "+name)
		c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// TestPipeNameInUse: a second server on a live name fails with "pipe name
// in use" and leaves the first server working.
func TestPipeNameInUse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pipeTestDir(t)
	tr := serverT(t, "npipe:pipe=busy")
	ln, err := Listen(context.Background(), tr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, name := range []string{"busy", "BUSY"} {
		_, err = Listen(context.Background(), serverT(t, "npipe:pipe="+name), Options{})
		if !errors.Is(err, ErrPipeInUse) || !strings.Contains(err.Error(), "pipe name in use") || !strings.Contains(err.Error(), "choose another name") {
			t.Fatalf("second listener on %s: %v", name, err)
		}
	}
	// The probes of the second servers reached the first one: a real
	// server sees them as clients that hang up at once.
	for range 2 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("probe sent %d bytes, %v", n, err)
		}
		c.Close()
	}
	done := echoOnce(ln)
	c, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, "npipe:server=localhost,pipe=busy"))
	if err != nil {
		t.Fatalf("the first server stopped working: %v", err)
	}
	roundTrip(t, c, "still here")
	c.Close()
	<-done
}

// TestPipeStaleSocketReplaced: a socket left by a server that died is
// replaced; a file that is not a socket is never removed.
func TestPipeStaleSocketReplaced(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := pipeTestDir(t)
	path := filepath.Join(dir, "stale")
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close() // the socket file stays, nobody listens: a crashed server
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(context.Background(), serverT(t, "npipe:pipe=stale"), Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	done := echoOnce(ln)
	c, err := Dial(testkit.Context(t, 10*time.Second), clientT(t, "npipe:server=.,pipe=stale"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "new server")
	c.Close()
	<-done
	ln.Close()

	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Listen(context.Background(), serverT(t, "npipe:pipe=plain"), Options{})
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("listening over a regular file: %v", err)
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q %v", b, err)
	}
}

// TestPipeCloseKeepsReplacement: Close removes the socket only while it is
// still the listener's own.
func TestPipeCloseKeepsReplacement(t *testing.T) {
	dir := pipeTestDir(t)
	ln, err := ListenPipe("mine")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mine")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close removed another listener's socket: %v", err)
	}
}

// TestPipeMode: KDSRV_PIPE_MODE widens the socket and the directory lets
// the admitted users through; bad modes are refused.
func TestPipeMode(t *testing.T) {
	tests := []struct {
		mode    string
		want    fs.FileMode
		wantDir fs.FileMode
		wantErr bool
	}{
		{"", 0o600, 0o700, false},
		{"0600", 0o600, 0o700, false},
		{"0660", 0o660, 0o710, false},
		{"0o666", 0o666, 0o711, false},
		{"640", 0o640, 0o710, false},
		{"0755", 0, 0, true},
		{"0400", 0, 0, true},
		{"0066", 0, 0, true},
		{"rw", 0, 0, true},
		{"0", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			pipeTestDir(t)
			// A directory kdsrv creates itself gets the matching mode.
			sub := filepath.Join(os.Getenv(PipeDirEnv), "sub")
			t.Setenv(PipeDirEnv, sub)
			t.Setenv(PipeModeEnv, tc.mode)
			ln, err := ListenPipe("m")
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), PipeModeEnv) {
					t.Fatalf("mode %q: %v", tc.mode, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			st, err := os.Lstat(filepath.Join(sub, "m"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.want {
				t.Errorf("socket mode %04o, want %04o", st.Mode().Perm(), tc.want)
			}
			dst, err := os.Stat(sub)
			if err != nil {
				t.Fatal(err)
			}
			if dst.Mode().Perm() != tc.wantDir {
				t.Errorf("directory mode %04o, want %04o", dst.Mode().Perm(), tc.wantDir)
			}
		})
	}
}

// TestPipeDefaultDir: without KDSRV_PIPE_DIR, root uses /run/kdsrv/pipes
// and other users $XDG_RUNTIME_DIR/kdsrv (or a per-user temp directory).
func TestPipeDefaultDir(t *testing.T) {
	t.Setenv(PipeDirEnv, "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	got := PipeDir()
	if os.Geteuid() == 0 {
		if got != "/run/kdsrv/pipes" {
			t.Fatalf("root: %s", got)
		}
		if d := pipeDirs(); len(d) != 1 {
			t.Fatalf("root looks in %v", d)
		}
	} else {
		if got != "/run/user/4242/kdsrv" {
			t.Fatalf("user: %s", got)
		}
		if d := pipeDirs(); len(d) != 2 || d[1] != "/run/kdsrv/pipes" {
			t.Fatalf("user looks in %v", d)
		}
		t.Setenv("XDG_RUNTIME_DIR", "")
		if got := PipeDir(); !strings.HasPrefix(filepath.Base(got), "kdsrv-") {
			t.Fatalf("user without XDG_RUNTIME_DIR: %s", got)
		}
	}
	t.Setenv(PipeDirEnv, "/tmp/x")
	if PipeDir() != "/tmp/x" || len(pipeDirs()) != 1 {
		t.Fatalf("%s overrides: %s %v", PipeDirEnv, PipeDir(), pipeDirs())
	}
}

// TestPipeUnsafeDefaultDir: a default directory that others may write to
// is refused (they could swap the sockets).
func TestPipeUnsafeDefaultDir(t *testing.T) {
	t.Setenv(PipeDirEnv, "")
	d := t.TempDir()
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	err := preparePipeDir(d, 0o600)
	if err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("got %v", err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := preparePipeDir(d, 0o660); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(d); st.Mode().Perm() != 0o710 {
		t.Fatalf("directory not widened for group: %04o", st.Mode().Perm())
	}
}

// TestPipeDialErrors: missing pipes, remote hosts and over-long paths say
// what to do.
func TestPipeDialErrors(t *testing.T) {
	pipeTestDir(t)
	tests := []struct {
		client string
		want   []string
	}{
		{"npipe:server=.,pipe=nobody", []string{"no such pipe", "kdsrv -t npipe:pipe=nobody"}},
		{`npipe:server=\\debughost.example.net,pipe=kd`, []string{"only be reached from Windows", "tcp:port=N", "server=@{tcp:server=debughost.example.net,port=N}"}},
		{"npipe:server=192.0.2.7,pipe=kd", []string{"only be reached from Windows"}},
	}
	for _, tc := range tests {
		_, err := Dial(testkit.Context(t, 5*time.Second), clientT(t, tc.client))
		if err == nil {
			t.Fatalf("%s: no error", tc.client)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.client, err, w)
			}
		}
	}
	t.Setenv(PipeDirEnv, "/tmp/"+strings.Repeat("d", 90))
	_, err := ListenPipe(strings.Repeat("p", 30))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("long path: %v", err)
	}
}

// TestPipePeerAddr: the server sees which process connected (on Linux its
// uid and pid), not the empty name of an unbound unix socket.
func TestPipePeerAddr(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pipeTestDir(t)
	ln, err := ListenPipe("peer")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, sc := dialAccept(t, ln, func() (net.Conn, error) { return DialPipe(testkit.Context(t, 5*time.Second), ".", "peer") })
	want := "local pipe client"
	if runtime.GOOS == "linux" {
		want = fmt.Sprintf("uid %d pid %d", os.Geteuid(), os.Getpid())
	}
	if got := sc.RemoteAddr().String(); got != want {
		t.Fatalf("remote %q, want %q", got, want)
	}
	pair(t, sc, c)
}
