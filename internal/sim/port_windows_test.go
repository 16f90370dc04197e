//go:build windows

package sim

import (
	"errors"
	"testing"
)

func TestServePTYUnsupported(t *testing.T) {
	if err := ServePTY(ctxT(t), New(Config{}), PortOptions{}); !errors.Is(err, ErrPTYUnsupported) {
		t.Fatalf("ServePTY on Windows: %v; want ErrPTYUnsupported", err)
	}
}
