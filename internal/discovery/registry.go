package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MaxLineLen is the longest transport line a Registry accepts, in bytes.
// It keeps every line encodable in one discovery datagram.
const MaxLineLen = 255

// MaxTransports is the most transport lines one server may register.
const MaxTransports = 32

// maxEntrySize bounds how much of a registry file List reads.
const maxEntrySize = 64 << 10

// registryVersion is the "version" field written to every registry entry.
const registryVersion = 1

// Server is one discoverable KD connection server process.
type Server struct {
	// PID is the server's process id. Register fills in the caller's own
	// process id when it is 0.
	PID int
	// Transports are the server's transports in display form, each made
	// with Line, e.g. "tcp:Port=53:60" or "npipe:Pipe=KernelPipe,Password=*".
	Transports []string
}

// Registry is the machine-wide directory of discoverable servers: one file
// "<pid>.json" per server process. Only privileged processes can write the
// default directory, so only elevated servers can be listed.
type Registry struct {
	// Dir is the registry directory; empty means DefaultDir().
	Dir string
}

// entry is the on-disk form of a registry file.
type entry struct {
	Version    int      `json:"version"`
	PID        int      `json:"pid"`
	Start      string   `json:"start,omitempty"` // platform start-time token, see processStart
	Transports []string `json:"transports"`
}

func (r *Registry) dir() string {
	if r == nil || r.Dir == "" {
		return DefaultDir()
	}
	return r.Dir
}

// Register records s in the registry, replacing any previous entry of the
// same process, and returns a function that removes the entry again (call it
// when the server exits; it is safe to call more than once).
//
// The directory is created (mode 0755) if needed; the entry is written with
// mode 0644 to a temporary file and renamed into place, so readers never see
// a partial entry.
func (r *Registry) Register(s Server) (unregister func() error, err error) {
	dir := r.dir()
	if s.PID == 0 {
		s.PID = os.Getpid()
	}
	if s.PID < 0 {
		return nil, fmt.Errorf("discovery: register server: invalid process id %d", s.PID)
	}
	if len(s.Transports) == 0 {
		return nil, fmt.Errorf("discovery: register server %d: no transports to register", s.PID)
	}
	if len(s.Transports) > MaxTransports {
		return nil, fmt.Errorf("discovery: register server %d: %d transports, at most %d can be registered", s.PID, len(s.Transports), MaxTransports)
	}
	for _, l := range s.Transports {
		if err := checkLine(l); err != nil {
			return nil, fmt.Errorf("discovery: register server %d: %w", s.PID, err)
		}
	}
	start, err := processStart(s.PID)
	if err != nil {
		return nil, fmt.Errorf("discovery: register server %d: %w", s.PID, err)
	}
	data, err := json.Marshal(entry{Version: registryVersion, PID: s.PID, Start: start, Transports: s.Transports})
	if err != nil {
		return nil, fmt.Errorf("discovery: register server %d: %w", s.PID, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("discovery: register server %d: create registry directory: %w (discoverable servers must run elevated)", s.PID, err)
	}
	if err := secureDir(dir); err != nil {
		return nil, fmt.Errorf("discovery: register server %d: restrict access to %s: %w", s.PID, dir, err)
	}
	name := filepath.Join(dir, strconv.Itoa(s.PID)+".json")
	if err := writeFileAtomic(dir, name, data); err != nil {
		return nil, fmt.Errorf("discovery: register server %d in %s: %w (discoverable servers must run elevated)", s.PID, dir, err)
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				uerr = fmt.Errorf("discovery: unregister server %d: %w", s.PID, err)
			}
		})
		return uerr
	}, nil
}

func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	ok = true
	return nil
}

// List returns the live servers in the registry, ordered by process id.
//
// An entry whose process no longer exists, or whose process id now belongs
// to a process started at a different time (pid reuse), is never returned;
// List removes it when it has permission to and otherwise just skips it.
// Entries that cannot be read or decoded are skipped, as are (on Unix)
// entries owned by a user other than root or the caller. A registry
// directory that does not exist holds no servers.
func (r *Registry) List() ([]Server, error) {
	dir := r.dir()
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("discovery: list servers in %s: %w", dir, err)
	}
	var out []Server
	for _, de := range des {
		pid, ok := entryPID(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, de.Name())
		e, ok := readEntry(path, pid)
		if !ok {
			// Undecodable: keep it unless its process is gone.
			if alive, err := processAlive(pid, ""); err == nil && !alive {
				_ = os.Remove(path)
			}
			continue
		}
		alive, err := processAlive(pid, e.Start)
		if err != nil {
			continue
		}
		if !alive {
			_ = os.Remove(path) // prune; without permission the entry is just skipped
			continue
		}
		out = append(out, Server{PID: pid, Transports: e.Transports})
	}
	slices.SortFunc(out, func(a, b Server) int { return a.PID - b.PID })
	return out, nil
}

// entryPID parses a registry file name "<pid>.json".
func entryPID(name string) (int, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok || base == "" || len(base) > 10 {
		return 0, false
	}
	for _, c := range base {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	pid, err := strconv.Atoi(base)
	return pid, err == nil && pid > 0
}

func readEntry(path string, pid int) (entry, bool) {
	f, err := os.Open(path)
	if err != nil {
		return entry{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !trustedOwner(fi) {
		return entry{}, false
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil || len(data) > maxEntrySize {
		return entry{}, false
	}
	var e entry
	if err := json.Unmarshal(data, &e); err != nil || e.Version != registryVersion || e.PID != pid {
		return entry{}, false
	}
	if len(e.Transports) > MaxTransports {
		return entry{}, false
	}
	for _, l := range e.Transports {
		if checkLine(l) != nil {
			return entry{}, false
		}
	}
	return e, true
}

// checkLine validates one transport display line.
func checkLine(l string) error {
	if l == "" {
		return errors.New("empty transport line")
	}
	if len(l) > MaxLineLen {
		return fmt.Errorf("transport line %.40q... is %d bytes long, at most %d are allowed", l, len(l), MaxLineLen)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("transport line %q contains a byte 0x%02x outside printable ASCII", l, c)
		}
	}
	return nil
}
