package targetlink

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"kdsrv/internal/spec"
)

// resolver resolves the symbolic links of an absolute, clean path.
type resolver func(string) (string, error)

// place is a target located on this machine: what to match, what to open
// and how to describe it.
type place struct {
	kind  spec.TargetKind
	desc  string       // e.g. "serial /dev/ttyS1 (COM2) @115200", "pipe /run/vm/kd.sock"
	given string       // serial, pipe: the device or path as given, cleaned (COMn mapped)
	real  string       // serial, pipe: given with symbolic links resolved; what is opened
	host  string       // ipport: lower-case host, IP addresses canonical
	port  int          // ipport: TCP port; net: UDP port
	addrs []netip.Addr // ipport: the addresses that may be dialled, from one resolution (admit)
}

// targetError is an error about one target: what failed and what to do.
func targetError(desc, msg, hint string) error {
	s := "target " + quote(desc) + ": " + msg
	if hint != "" {
		s += "; " + hint
	}
	return errors.New(s)
}

// locate finds where t lives on a goos machine, resolving symbolic links
// with res (nil: no resolution).
func locate(t *spec.Target, goos string, res resolver) (*place, error) {
	if t == nil {
		return nil, errors.New("targetlink: no target given")
	}
	switch t.Kind {
	case spec.TargetSerial:
		return locateSerial(t, goos, res)
	case spec.TargetPipe:
		return locatePipe(t, goos, res)
	case spec.TargetIPPort:
		pl := &place{kind: t.Kind, port: t.IPPort}
		if t.Port == "" || t.IPPort <= 0 || t.IPPort > 65535 {
			return nil, targetError(t.String(), "ipport target needs a host and a TCP port", "write com:ipport=PORT,port=HOST")
		}
		pl.host = normHost(t.Port)
		pl.desc = "ipport " + net.JoinHostPort(pl.host, strconv.Itoa(t.IPPort))
		return pl, nil
	case spec.TargetNet:
		if t.NetPort <= 0 || t.NetPort > 65535 {
			return nil, targetError(t.String(), "KDNET target needs a UDP port", "write net:port=N,key=a.b.c.d")
		}
		return &place{kind: t.Kind, port: t.NetPort, desc: "kdnet udp/" + strconv.Itoa(t.NetPort)}, nil
	}
	return nil, targetError(t.String(), "the target names no kind of connection", "give com:port=..., com:pipe,port=..., com:ipport=... or net:...; run Complete after FillFromEnv")
}

// normHost lower-cases a host, drops brackets and a leading \\ and writes an
// IP address in canonical form.
func normHost(h string) string {
	h = strings.ToLower(strings.TrimPrefix(h, `\\`))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.String()
	}
	return h
}

func locateSerial(t *spec.Target, goos string, res resolver) (*place, error) {
	pl := &place{kind: spec.TargetSerial}
	dev, err := spec.COMDevice(t.Port, goos)
	if err != nil {
		return nil, targetError("serial "+t.Port, "this machine cannot open it: "+err.Error(), "")
	}
	baud := ""
	if t.Baud > 0 {
		baud = " @" + strconv.Itoa(t.Baud)
	}
	if goos == "windows" {
		pl.given, pl.real = dev, dev // \\.\COMn is matched as COMn (see winNorm)
		pl.desc = "serial " + t.Port + baud
		if err := checkWinComponents(dev); err != nil {
			return nil, targetError(pl.desc, err.Error(), "")
		}
		return pl, nil
	}
	pl.given = filepath.Clean(dev)
	pl.desc = "serial " + pl.given
	if !strings.HasPrefix(t.Port, "/") {
		pl.desc += " (" + t.Port + ")"
	}
	pl.desc += baud
	if pl.real, err = resolveWith(res, pl.given); err != nil {
		return nil, targetError(pl.desc, "cannot follow the device path: "+cleanText(err), "check the path and its symbolic links")
	}
	return pl, nil
}

func locatePipe(t *spec.Target, goos string, res resolver) (*place, error) {
	pl := &place{kind: spec.TargetPipe}
	p := t.Port
	if goos == "windows" {
		pl.desc = "pipe " + p
		if !strings.HasPrefix(p, `\\`) {
			return nil, targetError(pl.desc, "a VM pipe on Windows is a named pipe", `give port=\\.\pipe\Name`)
		}
		if err := checkWinComponents(p); err != nil {
			return nil, targetError(pl.desc, err.Error(), `give port=\\.\pipe\Name`)
		}
		pl.given, pl.real = p, p
		return pl, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, targetError("pipe "+p, "a Windows named pipe cannot be opened on "+goos,
			"VMs on this system serve their serial port as a unix socket: give its absolute path, e.g. port=/run/vm/com1.sock")
	}
	pl.given = filepath.Clean(p)
	pl.desc = "pipe " + pl.given
	var err error
	if pl.real, err = resolveWith(res, pl.given); err != nil {
		return nil, targetError(pl.desc, "cannot follow the socket path: "+cleanText(err), "check the path and its symbolic links")
	}
	return pl, nil
}

// checkWinComponents refuses "." and ".." elements in a Windows device or
// pipe path: Win32 would fold them and escape the allowed prefix.
func checkWinComponents(p string) error {
	rest := strings.ReplaceAll(strings.TrimLeft(p, `\/`), "/", `\`)
	if _, after, ok := strings.Cut(rest, `\`); ok {
		rest = after // skip the host element, "." for this machine
	}
	for _, e := range strings.Split(rest, `\`) {
		if e == ".." || e == "." {
			return errors.New(`the path has a "." or ".." element`)
		}
	}
	return nil
}

func resolveWith(res resolver, p string) (string, error) {
	if res == nil {
		return p, nil
	}
	return res(p)
}

// fsResolver resolves the symbolic links of an absolute, clean path on this
// machine's file system. For a path that does not exist it resolves its
// longest existing parent; a dangling symbolic link is followed to where it
// points.
func fsResolver(p string) (string, error) {
	if runtime.GOOS == "windows" {
		return p, nil // device and pipe namespaces have no symbolic links we follow
	}
	return resolveExisting(p, 0)
}

const maxLinks = 40 // the limit of Linux's path walk

func resolveExisting(p string, depth int) (string, error) {
	if depth > maxLinks {
		return "", errors.New("too many levels of symbolic links")
	}
	r, err := filepath.EvalSymlinks(p)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	dir, base := filepath.Split(p)
	dir = filepath.Clean(dir)
	if dir == p || base == "" {
		return p, nil
	}
	rdir, err := resolveExisting(dir, depth+1)
	if err != nil {
		return "", err
	}
	full := filepath.Join(rdir, base)
	if fi, lerr := os.Lstat(full); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		dest, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(rdir, dest)
		}
		return resolveExisting(filepath.Clean(dest), depth+1)
	}
	return full, nil
}

// Key returns the identity used for "target in use" checks: the same
// physical target gives the same key however it was spelled. Device and
// socket paths are cleaned and their symbolic links resolved, COMn is mapped
// to its device, Windows names are compared case-insensitively, and a host
// is lower-cased with IP addresses in canonical form and localhost meaning
// 127.0.0.1 (no name is looked up). Keys look like "serial:/dev/ttyS0",
// "pipe:/run/vm/kd.sock", "ipport:127.0.0.1:5555" and "net:50000".
func Key(t *spec.Target) (string, error) {
	return key(t, runtime.GOOS, fsResolver)
}

func key(t *spec.Target, goos string, res resolver) (string, error) {
	pl, err := locate(t, goos, res)
	if err != nil {
		return "", err
	}
	switch pl.kind {
	case spec.TargetSerial, spec.TargetPipe:
		r := pl.real
		if goos == "windows" {
			r = winNorm(r)
		}
		return string(pl.kind) + ":" + r, nil
	case spec.TargetIPPort:
		h := pl.host
		if h == "localhost" {
			h = "127.0.0.1"
		}
		return "ipport:" + net.JoinHostPort(h, strconv.Itoa(pl.port)), nil
	case spec.TargetNet:
		return "net:" + strconv.Itoa(pl.port), nil
	}
	return "", fmt.Errorf("targetlink: no key for target kind %q", pl.kind)
}
