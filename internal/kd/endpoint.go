package kd

import (
	"context"
	"encoding/binary"
	"sync/atomic"
)

// Endpoint is one end of a KD link, in the host (debugger) or the target
// (kernel) role: it sends data packets and waits for their ACKs, delivers
// the peer's packets and events, and counts what happened. Link (KDCOM
// over a byte stream) and kdnet.Link (KDNET over UDP) implement it; the
// server, the client bridge and the simulated target are written against
// it and do not care which one they hold.
type Endpoint interface {
	// Role is the end the endpoint plays.
	Role() Role
	// Send sends one data packet and waits until the peer acknowledges
	// it, retransmitting until ctx ends. Concurrent senders queue.
	Send(ctx context.Context, t PacketType, payload []byte) error
	// SendRetries is Send that gives up with ErrRetriesExhausted after
	// retries unacknowledged retransmissions (0 = no budget).
	SendRetries(ctx context.Context, t PacketType, payload []byte, retries int) error
	// SendEpoch is Send that also reports how many RESETs had been
	// received when the packet was last transmitted (see Message.ResetSeq).
	SendEpoch(ctx context.Context, t PacketType, payload []byte) (uint64, error)
	// Recv returns the next message from the peer.
	Recv(ctx context.Context) (Message, error)
	// SendBreakIn asks the target to stop (host role).
	SendBreakIn() error
	// SendReset asks the target to restart both id streams (host role).
	SendReset() error
	// Stats returns a snapshot of the endpoint's counters.
	Stats() Stats
	// Done is closed when the endpoint has stopped (Close, or a fatal
	// error on its line).
	Done() <-chan struct{}
	// Close stops the endpoint and closes its line. It is safe to call
	// more than once and from any goroutine.
	Close() error
}

var _ Endpoint = (*Link)(nil)

// Stats counts the events of an Endpoint. All counters only grow.
type Stats struct {
	PacketsSent     uint64 // data packets sent the first time
	PacketsReceived uint64 // new data packets delivered
	Retransmits     uint64 // data packets sent again (time-out, RESEND, RESET)
	ResendsSent     uint64 // RESEND requests we sent (corrupt packets)
	ResendsReceived uint64
	ResetsSent      uint64
	ResetsReceived  uint64
	Corrupt         uint64 // bad checksum/trailer/length, or stalled packets
	Duplicates      uint64 // data packets received again and re-acknowledged
	BreakInsSent    uint64
	BreakInsRecv    uint64
	Dropped         uint64 // data packets not acknowledged because the queue was full
	NoiseBytes      uint64 // bytes skipped while resynchronising (KDCOM only)
}

// Counters are the live counters behind Stats, updated concurrently by an
// endpoint's goroutines. The zero value is ready to use.
type Counters struct {
	PacketsSent, PacketsReceived, Retransmits, ResendsSent, ResendsReceived atomic.Uint64
	ResetsSent, ResetsReceived, Corrupt, Duplicates, BreakInsSent           atomic.Uint64
	BreakInsRecv, Dropped, NoiseBytes                                       atomic.Uint64
}

// fields lists the counters in the order of Stats' fields; it is the one
// place that pairs them.
func (c *Counters) fields() [13]*atomic.Uint64 {
	return [...]*atomic.Uint64{
		&c.PacketsSent, &c.PacketsReceived, &c.Retransmits, &c.ResendsSent, &c.ResendsReceived,
		&c.ResetsSent, &c.ResetsReceived, &c.Corrupt, &c.Duplicates, &c.BreakInsSent,
		&c.BreakInsRecv, &c.Dropped, &c.NoiseBytes,
	}
}

func (s *Stats) fields() [13]*uint64 {
	return [...]*uint64{
		&s.PacketsSent, &s.PacketsReceived, &s.Retransmits, &s.ResendsSent, &s.ResendsReceived,
		&s.ResetsSent, &s.ResetsReceived, &s.Corrupt, &s.Duplicates, &s.BreakInsSent,
		&s.BreakInsRecv, &s.Dropped, &s.NoiseBytes,
	}
}

// Snapshot returns the counters' current values.
func (c *Counters) Snapshot() Stats {
	var s Stats
	cf := c.fields()
	for i, p := range s.fields() {
		*p = cf[i].Load()
	}
	return s
}

// Add returns s with every counter of o added.
func (s Stats) Add(o Stats) Stats {
	of := o.fields()
	for i, p := range s.fields() {
		*p += *of[i]
	}
	return s
}

// Sub returns s with every counter of o subtracted: the events between
// the snapshot o and the later snapshot s.
func (s Stats) Sub(o Stats) Stats {
	of := o.fields()
	for i, p := range s.fields() {
		*p -= *of[i]
	}
	return s
}

// Resumes reports whether a host packet lets a stopped target run again:
// a manipulate Continue, Continue2 or Reboot. The target answers these
// with no reply; the next thing it sends is a state change. Every hop that
// keeps a picture of the target (halted or running, the state change it
// stopped in) uses this rule.
func Resumes(t PacketType, payload []byte) bool {
	if t != TypeStateManipulate || len(payload) < 4 {
		return false
	}
	switch APINumber(binary.LittleEndian.Uint32(payload)) {
	case APIContinue, APIContinue2, APIReboot:
		return true
	}
	return false
}
