package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"kdsrv/internal/kdtrace"
	"kdsrv/internal/wire"
)

// ConsoleEvent is what Console hands its callback: console bytes, or a
// notice or target state from the server.
type ConsoleEvent struct {
	Data   []byte       // bytes the target wrote on its line outside KD packets
	Notice *wire.Notice // a non-fatal notice (e.g. bytes dropped)
	State  *wire.State  // a change of the target link's state
}

// Console streams a watched target's console (after Watch) to f until
// ctx ends (then it returns nil) or the connection ends. Data is only
// valid during the call.
func (c *Conn) Console(ctx context.Context, f func(ConsoleEvent)) error {
	stop := closeOnDone(ctx, c.wc)
	defer stop()
	for {
		fr, err := c.wc.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return c.Closed()
			}
			return explain(c.srv, err)
		}
		switch fr.Type {
		case wire.TypeConsole:
			c.opts.Trace.Console(kdtrace.HopServer, kdtrace.ToHost, fr.Payload)
			f(ConsoleEvent{Data: fr.Payload})
		case wire.TypeNotice:
			n, err := wire.DecodeNotice(fr.Payload)
			if err == nil {
				f(ConsoleEvent{Notice: &n})
			}
		case wire.TypeState:
			st, err := wire.DecodeState(fr.Payload)
			if err == nil {
				c.opts.Trace.Note(kdtrace.HopServer, kdtrace.ToHost, "state", fmt.Sprintf("%s: %s", st.State, st.Text))
				f(ConsoleEvent{State: &st})
			}
		case wire.TypeDetached:
			return nil
		}
	}
}
