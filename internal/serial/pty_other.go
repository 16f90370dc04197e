//go:build !unix

package serial

import (
	"errors"
	"os"
)

// ErrNoPTY is returned where the system has no pseudo-terminals.
var ErrNoPTY = errors.New("pseudo-terminals are not available on this system")

// OpenPTY returns ErrNoPTY.
func OpenPTY() (master *os.File, slavePath string, err error) { return nil, "", ErrNoPTY }

// MakeRaw returns ErrNoPTY.
func MakeRaw(fd int) error { return ErrNoPTY }
