package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DumpFile is the output of a dump, written safely: the bytes go to a
// temporary file beside the destination, which replaces the destination
// only when the dump is complete (Commit). An interrupted or failed dump
// (Abort) leaves an existing destination exactly as it was, and keeps what
// it read only when asked, as PATH.partial.
//
// A new destination gets mode 0600 (a dump holds kernel memory, which may
// hold secrets); an existing one keeps its permission bits.
type DumpFile struct {
	path    string
	tmp     *os.File
	written int64
	done    bool
}

// PartialSuffix is appended to the destination's name for the partial data
// of an aborted dump kept on request.
const PartialSuffix = ".partial"

// CreateDumpFile starts a dump to path. It fails at once when path is a
// directory or its directory cannot take a new file, so that nothing is
// read from the target in vain.
func CreateDumpFile(path string) (*DumpFile, error) {
	if path == "" {
		return nil, errors.New("dump: no output file given")
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("dump: %s exists and is not a regular file; give a file name", path)
		}
		mode = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("dump: cannot write into the directory of %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("dump: %w", err)
	}
	return &DumpFile{path: path, tmp: tmp}, nil
}

// Write appends to the temporary file.
func (d *DumpFile) Write(b []byte) (int, error) {
	n, err := d.tmp.Write(b)
	d.written += int64(n)
	if err != nil {
		return n, fmt.Errorf("dump: writing %s: %w", d.tmp.Name(), err)
	}
	return n, nil
}

// Written returns how many bytes were written so far.
func (d *DumpFile) Written() int64 { return d.written }

// Path returns the destination.
func (d *DumpFile) Path() string { return d.path }

// Commit flushes the data to disk and puts it in place of the destination
// in one step (rename). On error the destination is unchanged and the
// temporary file removed.
func (d *DumpFile) Commit() error {
	if d.done {
		return errors.New("dump: already finished")
	}
	d.done = true
	name := d.tmp.Name()
	err := d.tmp.Sync()
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, d.path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("dump: saving %s: %w", d.path, err)
	}
	syncDir(filepath.Dir(d.path))
	return nil
}

// Abort ends an unfinished dump. The destination is not touched. With keep,
// the data read so far is renamed to PATH.partial (replacing an older one)
// and its name returned; otherwise it is removed. Abort after Commit does
// nothing.
func (d *DumpFile) Abort(keep bool) (partial string, err error) {
	if d.done {
		return "", nil
	}
	d.done = true
	name := d.tmp.Name()
	_ = d.tmp.Close()
	if !keep {
		return "", os.Remove(name)
	}
	partial = d.path + PartialSuffix
	if err := os.Rename(name, partial); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("dump: keeping the partial data as %s: %w", partial, err)
	}
	return partial, nil
}

// syncDir makes a rename in dir durable where the system supports it.
func syncDir(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = f.Sync() // not supported everywhere (Windows): best effort
	f.Close()
}
