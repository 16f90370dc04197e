package commux

import (
	"fmt"
	"net"
)

// listener accepts the connections the peer opens on one channel. Its
// fields are guarded by m.mu.
type listener struct {
	m       *Mux
	ch      uint8
	backlog []*conn
	closed  bool
	wake    chan struct{}
}

func (l *listener) signal() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// Accept waits for the peer to open the channel and returns the connection.
func (l *listener) Accept() (net.Conn, error) {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		for len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog[0] = nil
			l.backlog = l.backlog[1:]
			if c.err == nil || len(c.readQ) > 0 || c.peerFin {
				return c, nil
			}
			// Reset before it was accepted: skip it.
		}
		if l.closed {
			err := error(net.ErrClosed)
			if m.err != nil {
				err = m.err
			}
			return nil, &net.OpError{Op: "accept", Net: "com", Addr: l.Addr(), Err: err}
		}
		wake := l.wake
		m.mu.Unlock()
		<-wake
		m.mu.Lock()
	}
}

// Close stops listening. Connections already accepted stay open; queued
// ones are reset.
func (l *listener) Close() error {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.closed {
		return &net.OpError{Op: "close", Net: "com", Addr: l.Addr(), Err: net.ErrClosed}
	}
	if m.listeners[l.ch] == l {
		m.listeners[l.ch] = nil
	}
	for _, c := range l.backlog {
		if m.conns[c.ch] == c {
			m.abortLocked(c, rstNoListen, nil)
		}
	}
	l.backlog = nil
	l.closeLocked()
	m.kickWriter()
	return nil
}

func (l *listener) closeLocked() {
	if !l.closed {
		l.closed = true
		l.signal()
	}
}

// Addr returns com:<port>#<channel>.
func (l *listener) Addr() net.Addr { return Addr{Port: l.m.name, Channel: int(l.ch)} }

func (l *listener) String() string {
	return fmt.Sprintf("commux listener on %s", l.m.chanName(int(l.ch)))
}
