package kd

import (
	"encoding/binary"
	"fmt"
)

// Packet is one KD packet. Control packets (ACK, RESEND, RESET) carry no
// payload; data packets carry Payload (at most MaxPayload bytes).
type Packet struct {
	Type    PacketType
	ID      uint32
	Payload []byte
}

func (p Packet) String() string {
	if p.Type.IsControl() {
		return fmt.Sprintf("%s id=%#08x", p.Type, p.ID)
	}
	return fmt.Sprintf("%s id=%#08x len=%d", p.Type, p.ID, len(p.Payload))
}

// Checksum is the KDCOM checksum: the sum of every payload byte as a
// wrapping uint32.
func Checksum(b []byte) uint32 {
	var s uint32
	for len(b) >= 8 {
		s += uint32(b[0]) + uint32(b[1]) + uint32(b[2]) + uint32(b[3]) +
			uint32(b[4]) + uint32(b[5]) + uint32(b[6]) + uint32(b[7])
		b = b[8:]
	}
	for _, c := range b {
		s += uint32(c)
	}
	return s
}

// AppendPacket appends the KDCOM wire image of p to dst: a control packet is
// its 16-byte header; a data packet is header, payload and the 0xAA trailer.
// It panics if a data payload exceeds MaxPayload (a programming error: callers
// clamp transfers to the protocol's limits).
func AppendPacket(dst []byte, p Packet) []byte {
	if p.Type.IsControl() {
		return appendHeader(dst, ControlLeader, p.Type, 0, p.ID, 0)
	}
	if len(p.Payload) > MaxPayload {
		panic(fmt.Sprintf("kd: payload of %d bytes exceeds the %d-byte packet limit", len(p.Payload), MaxPayload))
	}
	dst = appendHeader(dst, DataLeader, p.Type, uint16(len(p.Payload)), p.ID, Checksum(p.Payload))
	dst = append(dst, p.Payload...)
	return append(dst, TrailingByte)
}

// AppendControl appends a control packet of type t with the given id.
func AppendControl(dst []byte, t PacketType, id uint32) []byte {
	return appendHeader(dst, ControlLeader, t, 0, id, 0)
}

func appendHeader(dst []byte, leader uint32, t PacketType, n uint16, id, sum uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, leader)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(t))
	dst = binary.LittleEndian.AppendUint16(dst, n)
	dst = binary.LittleEndian.AppendUint32(dst, id)
	return binary.LittleEndian.AppendUint32(dst, sum)
}

// FrameKind says what the decoder found on the line.
type FrameKind uint8

const (
	// FramePacket is a well-formed control or data packet.
	FramePacket FrameKind = iota + 1
	// FrameBreakIn is a lone break-in byte (0x62) seen between packets.
	FrameBreakIn
	// FrameCorrupt is a data packet whose header looked plausible but whose
	// length, trailer or checksum was wrong, or which stopped mid-way. The
	// receiver answers it with RESEND. Packet holds the header fields.
	FrameCorrupt
)

// Frame is one decoded item.
type Frame struct {
	Kind   FrameKind
	Packet Packet // Payload aliases the decoder's buffer: valid until the next Feed
	Reason string // for FrameCorrupt: what was wrong
}

// Decoder is a push parser for the KDCOM byte stream. It never trusts a
// length before checking it against MaxPayload, and it resynchronises after
// garbage by scanning for the next leader: after a bad packet it rescans the
// bytes that followed the bad leader, so a good packet hidden behind noise is
// not lost. It does no I/O: feed it bytes with Feed and take frames with Next.
//
// The zero value is ready to use.
type Decoder struct {
	buf []byte // unconsumed bytes; buf[0:] is where scanning resumes
	// scan state: pos is how far buf has been scanned for a leader, run is
	// the length of the current run of identical leader bytes ending at pos.
	pos     int
	run     int
	runByte byte
	skip    int // bytes of the last packet handed out, dropped on the next call
	quiet   int // bytes still to scan that belonged to a rejected packet: a 0x62 there is payload, not a break-in
	// Discarded counts bytes skipped while looking for a leader (noise).
	Discarded uint64
	// KeepNoise makes the decoder keep the bytes it skips that were not
	// part of any packet (a target's console text on a shared line), in
	// order, for TakeNoise.
	KeepNoise bool
	// NoBreakIn makes a lone 0x62 an ordinary byte (noise) rather than a
	// FrameBreakIn: on the host's side of a line only the target would
	// take it as a break-in, so there it is the target's console text.
	NoBreakIn bool
	noise     []byte
}

// TakeNoise returns the bytes skipped since the last call (only kept when
// KeepNoise is set). The slice is valid until the next call to any of the
// decoder's methods.
func (d *Decoder) TakeNoise() []byte {
	n := d.noise
	d.noise = d.noise[:0]
	return n
}

// skipped records a byte that was not part of any packet.
func (d *Decoder) skipped(b byte) {
	if d.KeepNoise {
		d.noise = append(d.noise, b)
	}
}

// skippedRun records the bytes of an abandoned partial leader.
func (d *Decoder) skippedRun() {
	if d.KeepNoise {
		for range d.run {
			d.noise = append(d.noise, d.runByte)
		}
	}
}

// Feed appends received bytes.
func (d *Decoder) Feed(b []byte) {
	if d.skip > 0 {
		d.consume(d.skip)
		d.skip = 0
	}
	d.buf = append(d.buf, b...)
}

// Buffered reports how many received bytes are not yet consumed.
func (d *Decoder) Buffered() int { return len(d.buf) }

// MidPacket reports whether the decoder holds the start of a packet (a
// leader, or part of one) and is waiting for more bytes.
func (d *Decoder) MidPacket() bool {
	return d.run > 0
}

// leaderAt returns the index of a complete leader at the start of the
// unscanned region (set after a leader was found), or -1.
func (d *Decoder) leaderAt() int {
	if d.run == 4 {
		return d.pos - 4
	}
	return -1
}

// Abort gives up on a packet that stopped arriving mid-way (the caller's
// inter-byte time-out expired). If a data packet header was complete, it
// returns a FrameCorrupt for it so the caller can ask for a resend; either
// way scanning restarts one byte after the abandoned leader.
func (d *Decoder) Abort() (Frame, bool) {
	start := d.leaderAt()
	if start < 0 {
		// Partial leader only: forget the run, keep scanning after it.
		d.skippedRun()
		d.run = 0
		d.consume(d.pos)
		return Frame{}, false
	}
	var f Frame
	ok := false
	if len(d.buf)-start >= HeaderSize && d.buf[start] == DataLeaderByte {
		f = Frame{Kind: FrameCorrupt, Packet: headerPacket(d.buf[start:]), Reason: "packet stopped mid-way"}
		ok = true
	}
	d.skipped(d.buf[start])
	d.rescanFrom(start + 1)
	d.quiet = len(d.buf)
	return f, ok
}

func headerPacket(h []byte) Packet {
	return Packet{
		Type: PacketType(binary.LittleEndian.Uint16(h[4:])),
		ID:   binary.LittleEndian.Uint32(h[8:]),
	}
}

// rescanFrom discards buf[:i] and restarts leader scanning at the new start.
func (d *Decoder) rescanFrom(i int) {
	d.consume(i)
	d.pos = 0
	d.run = 0
}

func (d *Decoder) consume(n int) {
	if n <= 0 {
		return
	}
	rest := copy(d.buf, d.buf[n:])
	d.buf = d.buf[:rest]
	d.pos -= n
	if d.pos < 0 {
		d.pos = 0
	}
}

// Next returns the next complete frame, or ok=false when more bytes are
// needed. The returned packet's Payload is valid until the next call to
// Feed, Next or Abort.
func (d *Decoder) Next() (Frame, bool) {
	for {
		if d.run < 4 {
			if !d.scan() {
				return Frame{}, false
			}
			if d.run < 4 {
				// scan returned a break-in.
				return Frame{Kind: FrameBreakIn}, true
			}
		}
		start := d.pos - 4
		h := d.buf[start:]
		if len(h) < HeaderSize {
			return Frame{}, false
		}
		p := headerPacket(h)
		count := int(binary.LittleEndian.Uint16(h[6:]))
		if h[0] == CtrlLeaderByte {
			if !p.Type.IsControl() {
				// "iiii" followed by something that is no control packet:
				// noise that happened to look like a leader.
				d.Discarded++
				d.skipped(h[0])
				d.rescanFrom(start + 1)
				continue
			}
			d.rescanFrom(start + HeaderSize)
			return Frame{Kind: FramePacket, Packet: p}, true
		}
		if count > MaxPayload || p.Type.IsControl() || p.Type >= TypeMax || p.Type == TypeUnused {
			// Not a packet we can trust: skip this leader and rescan.
			// Bytes that may be its payload are not break-ins.
			d.Discarded++
			d.skipped(h[0])
			quiet := min(HeaderSize+count, len(d.buf)-start) - 1
			d.rescanFrom(start + 1)
			d.quiet = max(d.quiet, quiet)
			if p.Type.IsControl() || p.Type >= TypeMax || p.Type == TypeUnused {
				continue
			}
			return Frame{Kind: FrameCorrupt, Packet: p, Reason: fmt.Sprintf("length %d exceeds %d", count, MaxPayload)}, true
		}
		total := HeaderSize + count + 1
		if len(h) < total {
			return Frame{}, false
		}
		payload := h[HeaderSize : HeaderSize+count]
		sum := binary.LittleEndian.Uint32(h[12:])
		if h[total-1] != TrailingByte || Checksum(payload) != sum {
			reason := "bad checksum"
			if h[total-1] != TrailingByte {
				reason = "missing trailing byte"
			}
			d.Discarded++
			d.skipped(h[0])
			d.rescanFrom(start + 1)
			d.quiet = total - 1
			return Frame{Kind: FrameCorrupt, Packet: p, Reason: reason}, true
		}
		p.Payload = payload
		// Consume lazily: the payload must stay valid until the next call,
		// so remember how much to drop at the next entry.
		d.rescanFromLater(start + total)
		return Frame{Kind: FramePacket, Packet: p}, true
	}
}

// rescanFromLater marks buf[:i] as consumed without moving bytes, so that a
// payload slice handed out stays valid; the bytes are dropped on the next
// scan.
func (d *Decoder) rescanFromLater(i int) {
	d.pos = i
	d.run = 0
	d.skip = i
}

// scan advances pos looking for a leader. It returns false when the buffer
// is exhausted without a result; true when either a leader completed (run ==
// 4) or a break-in byte was found (run < 4, byte consumed).
func (d *Decoder) scan() bool {
	if d.skip > 0 {
		d.consume(d.skip)
		d.skip = 0
	}
	for d.pos < len(d.buf) {
		c := d.buf[d.pos]
		d.pos++
		quiet := d.quiet > 0
		if quiet {
			d.quiet--
		}
		switch {
		case c == DataLeaderByte || c == CtrlLeaderByte:
			if d.run > 0 && c == d.runByte {
				d.run++
			} else {
				if d.run > 0 {
					d.Discarded += uint64(d.run)
					d.skippedRun()
				}
				d.runByte = c
				d.run = 1
			}
			if d.run == 4 {
				// Drop the noise before the leader so buffers stay small.
				d.consume(d.pos - 4)
				return true
			}
		case c == BreakInByte && d.run == 0 && !quiet && !d.NoBreakIn:
			d.consume(d.pos)
			return true
		default:
			d.Discarded += uint64(d.run) + 1
			d.skippedRun()
			d.skipped(c)
			d.run = 0
		}
	}
	// Keep only a partial leader: the noise before it is counted already,
	// and keeping it would let a peer whose every read ends in a leader
	// byte grow the buffer without bound.
	d.consume(d.pos - d.run)
	return false
}
