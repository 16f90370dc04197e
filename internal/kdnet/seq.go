package kdnet

import (
	"errors"
	"fmt"
	"sync"
)

// ErrReplay is returned by SeqWindow.Accept for a datagram whose sequence
// number does not advance.
var ErrReplay = errors.New("kdnet: stale or replayed datagram")

// SeqWindow numbers outgoing datagrams and guards against replayed or stale
// incoming ones. The zero value is ready to use and it is safe for
// concurrent use.
//
// Outgoing: NextSeq returns 1, 2, 3, ... and never goes back, not even
// across Reset. A peer drops datagrams whose seq does not advance, and a
// target that accepts a new handshake response forgets its marks, so a
// counter that only grows is right before and after a re-handshake.
// (Exception: the host's handshake response reuses the poke's seq and does
// not come from NextSeq.)
//
// Incoming: the rule is kept separately for each (channel, direction) pair.
// The first datagram of a pair after construction or Reset is accepted
// whatever its seq; after that a datagram is accepted only if its seq is
// strictly greater than the last accepted seq of its pair. Equal seqs are
// duplicates (or replays), smaller ones are stale; both are rejected with
// ErrReplay and do not change the state. Call Accept only for datagrams that
// Sealer.Open authenticated, so forged datagrams cannot move the mark.
//
// A rebooted target pokes again with a new client random and restarts its
// numbering: when the link layer accepts such a poke as a new session it
// calls Reset, and then Accept for the poke itself.
type SeqWindow struct {
	mu   sync.Mutex
	sent uint64
	last [2][2]uint64 // [channel][dir] last accepted seq
	seen [2][2]bool   // [channel][dir] whether last is set
}

// NextSeq returns the sequence number for the next outgoing datagram. Past
// MaxSeq (2^56-1) Seal refuses the number; a session never gets there.
func (w *SeqWindow) NextSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent++
	return w.sent
}

// Accept applies the replay rule to an authenticated datagram and, if it
// is accepted, records its seq. It returns an error wrapping ErrReplay for
// stale or duplicate datagrams, and ErrChannel for an unknown channel.
func (w *SeqWindow) Accept(d Datagram) error {
	if d.Channel > ChannelControl {
		return fmt.Errorf("%w %d", ErrChannel, uint8(d.Channel))
	}
	dir := 0
	if d.HostToTarget {
		dir = 1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[d.Channel][dir] && d.Seq <= w.last[d.Channel][dir] {
		last := w.last[d.Channel][dir]
		return fmt.Errorf("%w: %s-channel seq %d does not advance past %d", ErrReplay, d.Channel, d.Seq, last)
	}
	w.last[d.Channel][dir] = d.Seq
	w.seen[d.Channel][dir] = true
	return nil
}

// Last returns the last accepted seq for a channel and direction, and
// whether one has been accepted since construction or Reset.
func (w *SeqWindow) Last(ch Channel, hostToTarget bool) (seq uint64, ok bool) {
	if ch > ChannelControl {
		return 0, false
	}
	dir := 0
	if hostToTarget {
		dir = 1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[ch][dir], w.seen[ch][dir]
}

// Reset forgets every incoming mark (a new session: the peer restarted its
// numbering). The outgoing counter keeps growing.
func (w *SeqWindow) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = [2][2]uint64{}
	w.seen = [2][2]bool{}
}
