//go:build !unix

// Package ptyraw allocates pseudo-terminals for KDCOM endpoints. This
// system has none: every function returns ErrUnsupported.
package ptyraw

import (
	"errors"
	"os"
)

// ErrUnsupported is returned where the system has no pseudo-terminals.
var ErrUnsupported = errors.New("pseudo-terminals are not available on this system")

// Open returns ErrUnsupported.
func Open() (master *os.File, slavePath string, err error) { return nil, "", ErrUnsupported }

// MakeRaw returns ErrUnsupported.
func MakeRaw(fd int) error { return ErrUnsupported }
