package netem

import (
	"context"
	"errors"
	"io"
	"net"
)

// Relay copies bytes both ways between a and b, like socat: the "dumb
// relay" baseline for benchmarks. When one side reaches EOF, Relay
// half-closes the other side (CloseWrite) if it can and keeps copying the
// other way; if it cannot, it ends. Relay closes both conns before it
// returns. It returns nil when the streams ended normally, ctx.Err() when ctx
// ended them, and otherwise the first copy error.
func Relay(ctx context.Context, a, b net.Conn) error {
	type result struct {
		err       error
		halfClose bool // the copy ended at EOF and the destination was half-closed
	}
	results := make(chan result, 2)
	copyHalf := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err != nil {
			results <- result{err: err}
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			results <- result{halfClose: true}
			return
		}
		results <- result{}
	}
	go copyHalf(b, a)
	go copyHalf(a, b)

	var firstErr error
	closing := false
	closeBoth := func() {
		closing = true
		a.Close()
		b.Close()
	}
	ctxDone := ctx.Done()
	for pending := 2; pending > 0; {
		select {
		case r := <-results:
			pending--
			if r.err != nil && !closing && firstErr == nil && !errors.Is(r.err, net.ErrClosed) {
				firstErr = r.err
			}
			if !r.halfClose && !closing {
				closeBoth()
			}
		case <-ctxDone:
			ctxDone = nil
			if !closing {
				firstErr = ctx.Err()
				closeBoth()
			}
		}
	}
	if !closing {
		a.Close()
		b.Close()
	}
	return firstErr
}
