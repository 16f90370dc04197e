// Package initramfs writes Linux initramfs images: "newc" cpio archives
// (what the kernel unpacks into its first root file system), optionally
// gzip-compressed. It is used to boot kdtarget as the /init of a VM (see
// Kdtarget and scripts/vm-initramfs.sh), with no dependency on the cpio
// program.
package initramfs

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// File types in a newc header's mode field.
const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChr  = 0o020000
)

// Writer writes a newc cpio archive. Entries are written in the order they
// are added; a directory must be added before what it contains. Close
// writes the trailer; the archive is not valid without it.
type Writer struct {
	w      io.Writer
	off    int64
	ino    uint32
	closed bool
	err    error
}

// NewWriter returns a Writer that writes the archive to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 300} }

// Dir adds a directory.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	return w.entry(name, modeDir|uint32(perm.Perm()), 0, 0, nil)
}

// File adds a regular file with contents data.
func (w *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return w.entry(name, modeFile|uint32(perm.Perm()), 0, 0, data)
}

// CharDev adds a character device node, such as dev/console (5, 1).
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return w.entry(name, modeChr|uint32(perm.Perm()), major, minor, nil)
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if err := w.entry("TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	w.closed = true
	return nil
}

func (w *Writer) entry(name string, mode, rmajor, rminor uint32, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("initramfs: write after Close")
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" || strings.Contains(name, "\x00") || name != "TRAILER!!!" && (strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || name == "..") {
		return fmt.Errorf("initramfs: bad entry name %q", name)
	}
	if uint64(len(data)) > 0xFFFFFFFF {
		return fmt.Errorf("initramfs: %s is %d bytes; newc entries hold at most 4 GiB", name, len(data))
	}
	ino := uint32(0)
	nlink := uint32(1)
	if name != "TRAILER!!!" {
		w.ino++
		ino = w.ino
		if mode&0o170000 == modeDir {
			nlink = 2
		}
	}
	// 110-byte header: magic and 13 eight-digit hex fields.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	w.write([]byte(hdr))
	w.write([]byte(name + "\x00"))
	w.pad()
	w.write(data)
	w.pad()
	return w.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil || len(b) == 0 {
		return
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("initramfs: write: %w", err)
	}
}

// pad aligns the archive to 4 bytes, as newc requires after the name and
// after the data.
func (w *Writer) pad() {
	if r := w.off % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}

// Kdtarget writes to out an initramfs whose /init is the program init (a
// statically linked kdtarget for the guest's architecture): the
// directories dev, proc and sys, the node dev/console (so the kernel gives
// init the console as standard output) and /init. With compress it is
// gzip-compressed, which every kernel that has initramfs support unpacks
// (CONFIG_RD_GZIP).
func Kdtarget(out io.Writer, init []byte, compress bool) error {
	w := out
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(out)
		w = zw
	}
	cw := NewWriter(w)
	for _, d := range []string{"dev", "proc", "sys"} {
		if err := cw.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := cw.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := cw.File("init", 0o755, init); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("initramfs: gzip: %w", err)
		}
	}
	return nil
}
