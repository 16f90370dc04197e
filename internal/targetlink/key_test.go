package targetlink

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestKeySameTarget proves that spellings of one target share a key and
// different targets do not.
func TestKeySameTarget(t *testing.T) {
	t.Parallel()
	var dir, vm string
	if runtime.GOOS != "windows" {
		dir = t.TempDir()
		vm = filepath.Join(dir, "vm")
		mustMkdir(t, vm)
		mustWrite(t, filepath.Join(vm, "a.sock"))
		mustSymlink(t, filepath.Join(vm, "a.sock"), filepath.Join(dir, "link.sock"))
		mustSymlink(t, vm, filepath.Join(dir, "vmdir"))
	}
	groups := []struct {
		goos  string
		same  []string // trans= values with one key
		other string   // a trans= value with another key
	}{
		{"here", []string{
			"com:pipe,port=" + vm + "/a.sock",
			"com:pipe,port=" + vm + "/../vm/./a.sock",
			"com:pipe,port=" + dir + "/link.sock",
			"com:pipe,port=" + dir + "/vmdir/a.sock",
			"com:pipe,port=" + vm + "//a.sock,reconnect,resets=3",
		}, "com:pipe,port=" + vm + "/b.sock"},
		{"linux", []string{"com:port=COM2,baud=9600", "com:port=/dev/ttyS1,baud=115200", "com:port=2,baud=9600"}, "com:port=COM1,baud=9600"},
		{"windows", []string{"com:port=COM2,baud=9600", `com:port=\\.\COM2,baud=9600`, "com:port=com2,baud=1200"}, "com:port=COM12,baud=9600"},
		{"windows", []string{`com:pipe,port=\\.\pipe\VM1`, `com:pipe,port=\\.\PIPE\vm1`}, `com:pipe,port=\\.\pipe\vm2`},
		{"linux", []string{"com:ipport=5555,port=127.0.0.1", "com:ipport=5555,port=localhost", "com:ipport=5555,port=LOCALHOST"}, "com:ipport=5556,port=127.0.0.1"},
		{"linux", []string{"com:ipport=1,port=::1", "com:ipport=1,port=[0::1]"}, "com:ipport=1,port=::2"},
		{"linux", []string{"com:ipport=1,port=VMHost", `com:ipport=1,port=\\vmhost`}, "com:ipport=1,port=vmhost.lan"},
		{"linux", []string{"net:port=50000,key=1.2.3.4", "net:port=50000,key=5.6.7.8,target=192.0.2.1"}, "net:port=50001,key=1.2.3.4"},
	}
	for _, g := range groups {
		res := resolver(nil)
		if g.goos == "here" { // unix paths on this machine's file system
			if dir == "" {
				continue
			}
			g.goos, res = runtime.GOOS, fsResolver
		}
		var first string
		for i, s := range g.same {
			k, err := key(target(t, s), g.goos, res)
			if err != nil {
				t.Errorf("%s: key(%s): %v", g.goos, s, err)
				continue
			}
			if i == 0 {
				first = k
			} else if k != first {
				t.Errorf("%s: key(%s) = %q, want %q as for %s", g.goos, s, k, first, g.same[0])
			}
		}
		if k, err := key(target(t, g.other), g.goos, res); err != nil || k == first {
			t.Errorf("%s: key(%s) = %q, %v; want a different key than %q", g.goos, g.other, k, err, first)
		}
	}
}

func TestKeyPublic(t *testing.T) {
	t.Parallel()
	k, err := Key(target(t, "com:ipport=5555,port=localhost"))
	if err != nil || k != "ipport:127.0.0.1:5555" {
		t.Errorf("Key(localhost:5555) = %q, %v", k, err)
	}
	if k, err := Key(target(t, "net:port=50000,key=1.2.3.4")); err != nil || k != "net:50000" {
		t.Errorf("Key(net 50000) = %q, %v", k, err)
	}
	if runtime.GOOS != "windows" {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if k, err := Key(target(t, "com:pipe,port="+dir+"/x/../kd.sock")); err != nil || k != "pipe:"+dir+"/kd.sock" {
			t.Errorf("Key(pipe) = %q, %v; want pipe:%s/kd.sock", k, err, dir)
		}
	}
	if _, err := Key(nil); err == nil {
		t.Error("Key(nil) succeeded")
	}
	if _, err := key(target(t, "com:port=COM1,baud=9600"), "darwin", nil); err == nil {
		t.Error("key(COM1) on darwin succeeded; macOS has no COM numbering")
	}
}

// TestResolveLoop proves that a symbolic link loop is an error, not a hang.
func TestResolveLoop(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("unix paths")
	}
	dir := t.TempDir()
	mustSymlink(t, filepath.Join(dir, "b"), filepath.Join(dir, "a"))
	mustSymlink(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	if _, err := fsResolver(filepath.Join(dir, "a")); err == nil {
		t.Error("resolving a link loop succeeded")
	}
	a := mustAllow(t, []string{dir + "/*"}, false)
	if err := a.Check(target(t, "com:pipe,port="+dir+"/a")); err == nil {
		t.Error("Check of a link loop succeeded")
	}
	_ = os.Remove(filepath.Join(dir, "a"))
}
