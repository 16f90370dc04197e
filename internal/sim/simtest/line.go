// Package simtest helps tests talk to a KDCOM target — a simulated
// machine of package sim, or whatever serves one — over a raw line: bytes
// out, frames in, and no link layer in between, so a test sees every
// packet id and control packet the target sends, and sends exactly the
// bytes it means to.
package simtest

import (
	"net"
	"testing"
	"time"

	"kdsrv/internal/kd"
)

// Line is the debugger's end of a raw KDCOM line. Its methods fail the
// test when the line does.
type Line struct {
	t   testing.TB
	c   net.Conn
	dec kd.Decoder
	buf []byte
}

// NewLine wraps c, the debugger's end of a line to a target.
func NewLine(t testing.TB, c net.Conn) *Line {
	return &Line{t: t, c: c, buf: make([]byte, 4096)}
}

// Close closes the line.
func (l *Line) Close() error { return l.c.Close() }

// Write writes b as it is.
func (l *Line) Write(b []byte) {
	l.t.Helper()
	l.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := l.c.Write(b); err != nil {
		l.t.Fatalf("write: %v", err)
	}
}

// Control writes a control packet.
func (l *Line) Control(typ kd.PacketType, id uint32) {
	l.t.Helper()
	l.Write(kd.AppendControl(nil, typ, id))
}

// Request writes a manipulate request with packet id id.
func (l *Line) Request(id uint32, req kd.Manipulate) {
	l.t.Helper()
	l.Write(kd.AppendPacket(nil, kd.Packet{Type: kd.TypeStateManipulate, ID: id, Payload: req.Append(nil)}))
}

// Next returns the next packet the target sends (control or data),
// passing over break-in bytes and corrupt frames.
func (l *Line) Next() kd.Packet {
	l.t.Helper()
	l.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if f, ok := l.dec.Next(); ok {
			if f.Kind == kd.FramePacket {
				p := f.Packet
				p.Payload = append([]byte(nil), p.Payload...)
				return p
			}
			continue
		}
		n, err := l.c.Read(l.buf)
		if err != nil {
			l.t.Fatalf("waiting for a packet from the target: %v", err)
		}
		l.dec.Feed(l.buf[:n])
	}
}

// Expect reads the next packet and checks its type and id.
func (l *Line) Expect(typ kd.PacketType, id uint32) kd.Packet {
	l.t.Helper()
	p := l.Next()
	if p.Type != typ || p.ID != id {
		l.t.Fatalf("target sent %v id %#x; want %v id %#x", p.Type, p.ID, typ, id)
	}
	return p
}

// NextData passes over control packets and returns the next data packet.
func (l *Line) NextData() kd.Packet {
	l.t.Helper()
	for {
		if p := l.Next(); !p.Type.IsControl() {
			return p
		}
	}
}

// Attach writes first — the bytes a debugger opens a session with: a
// break-in byte, a RESET, or both — then waits for the target to report
// a stop, acknowledges the state change and returns it. Packets before
// it are passed over.
func (l *Line) Attach(first []byte) kd.StateChange {
	l.t.Helper()
	l.Write(first)
	for {
		p := l.NextData()
		if p.Type != kd.TypeStateChange64 {
			continue
		}
		sc, err := kd.DecodeStateChange(p.Payload)
		if err != nil {
			l.t.Fatalf("bad state change from the target: %v", err)
		}
		l.Control(kd.TypeAcknowledge, p.ID&^kd.SyncPacketID)
		return sc
	}
}
