package commux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Wire constants. docs/commux.md describes the same table; keep them in step.
const (
	magic0 = 0xC3 // first sync byte
	magic1 = 0x5A // second sync byte

	protoVersion = 1 // high nibble of byte 2

	headerLen  = 16 // sync(2) ver|kind(1) chan(1) gen(1) wnd(1) seq(2) ack(2) len(2) hcrc(4)
	trailerLen = 4  // CRC-32C over header and payload; present only when len > 0

	// MaxPayload is the largest payload one frame may carry. Receivers reject
	// longer frames; Config.MaxFrame may lower what a sender uses.
	MaxPayload = 1024

	// MaxChannel is the highest channel that carries connections.
	MaxChannel = 254
	// LinkChannel is reserved for link control (PING, PONG, link RESET).
	LinkChannel = 255

	maxSackBytes = 32 // SACK bitmap: up to 256 frames beyond the cumulative ack
	maxPingBytes = 8  // PING/PONG token
)

// Frame kinds (low nibble of byte 2).
const (
	kindData    = 1 // payload bytes of a connection, sequenced
	kindAck     = 2 // cumulative ack + window, optional SACK bitmap payload
	kindOpen    = 3 // open a connection on a channel (dialer -> listener)
	kindOpenAck = 4 // the listener accepted the OPEN
	kindClose   = 5 // FIN: sequenced like DATA, no payload; the sender is done
	kindReset   = 6 // abort a connection (channel 0-254) or the whole link (255)
	kindPing    = 7 // link keep-alive request (channel 255)
	kindPong    = 8 // link keep-alive answer (channel 255)
)

// Reset reasons (the one-byte payload of a RESET on a connection channel).
const (
	rstUnknown   = 0 // no reason given
	rstNoListen  = 1 // OPEN on a channel nobody listens on
	rstBusy      = 2 // the listener's accept queue is full
	rstNoConn    = 3 // frame for a connection the receiver does not have
	rstAborted   = 4 // the application or the mux gave up on the connection
	rstLinkClose = 5 // the sender's mux is closing
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is one decoded or to-be-encoded frame. payload may alias the
// decoder's buffer until the next feed.
type frame struct {
	kind    uint8
	ch      uint8
	gen     uint8 // connection generation (incarnation) on this channel
	wnd     uint8 // receive window: frames the sender of this frame will accept beyond ack
	seq     uint16
	ack     uint16
	payload []byte
}

var kindNames = [...]string{
	kindData: "DATA", kindAck: "ACK", kindOpen: "OPEN", kindOpenAck: "OPEN_ACK",
	kindClose: "CLOSE", kindReset: "RESET", kindPing: "PING", kindPong: "PONG",
}

func kindName(k uint8) string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

func (f *frame) String() string {
	return fmt.Sprintf("%s ch=%d gen=%d wnd=%d seq=%d ack=%d len=%d",
		kindName(f.kind), f.ch, f.gen, f.wnd, f.seq, f.ack, len(f.payload))
}

// validate checks the fields a receiver relies on. It is the single place
// that defines which frames are well formed.
func (f *frame) validate() error {
	n := len(f.payload)
	if n > MaxPayload {
		return fmt.Errorf("payload of %d bytes exceeds %d", n, MaxPayload)
	}
	link := f.ch == LinkChannel
	switch f.kind {
	case kindData:
		if link || n == 0 {
			return errors.New("DATA needs a connection channel and a payload")
		}
	case kindAck:
		if link || n > maxSackBytes {
			return errors.New("ACK needs a connection channel and at most 32 SACK bytes")
		}
	case kindOpen, kindOpenAck, kindClose:
		if link || n != 0 {
			return fmt.Errorf("%s needs a connection channel and no payload", kindName(f.kind))
		}
	case kindReset:
		if n > 1 {
			return errors.New("RESET carries at most a reason byte")
		}
	case kindPing, kindPong:
		if !link || n > maxPingBytes {
			return fmt.Errorf("%s belongs on channel 255 with at most 8 bytes", kindName(f.kind))
		}
	default:
		return fmt.Errorf("unknown frame kind %d", f.kind)
	}
	return nil
}

// encodedLen is the number of bytes f occupies on the line.
func encodedLen(payload int) int {
	if payload == 0 {
		return headerLen
	}
	return headerLen + payload + trailerLen
}

// appendFrame appends the wire form of f to dst. f must be valid.
func appendFrame(dst []byte, f *frame) []byte {
	start := len(dst)
	dst = append(dst, magic0, magic1, protoVersion<<4|f.kind, f.ch, f.gen, f.wnd)
	dst = binary.BigEndian.AppendUint16(dst, f.seq)
	dst = binary.BigEndian.AppendUint16(dst, f.ack)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:start+12], castagnoli))
	if len(f.payload) > 0 {
		dst = append(dst, f.payload...)
		dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	}
	return dst
}

// decoder turns a byte stream that may be corrupted, truncated, padded with
// noise, or have bytes dropped or duplicated into well-formed frames. It
// never trusts a length field before the header checksum has verified it,
// and after any failure it slides one byte past the bad sync and rescans.
type decoder struct {
	buf []byte
	off int // start of unconsumed bytes in buf

	crcErrors  uint64 // header or payload checksum mismatches
	badHeaders uint64 // checksum fine, fields impossible (version or peer mismatch)
	resyncs    uint64 // times bytes were skipped to find the next frame
	skipped    uint64 // bytes skipped
}

// feed appends received bytes. Frames returned by earlier next calls are
// invalid afterwards.
func (d *decoder) feed(p []byte) {
	if d.off > 0 && d.off == len(d.buf) {
		d.buf, d.off = d.buf[:0], 0
	} else if d.off > 0 && (d.off >= 64<<10 || d.off > len(d.buf)/2) {
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
}

// skip drops n unconsumed bytes as noise.
func (d *decoder) skip(n int) {
	d.off += n
	d.resyncs++
	d.skipped += uint64(n)
}

// next returns the next well-formed frame, or false if more bytes are needed.
func (d *decoder) next() (frame, bool) {
	for {
		b := d.buf[d.off:]
		i := bytes.IndexByte(b, magic0)
		for i >= 0 && i+1 < len(b) && b[i+1] != magic1 {
			j := bytes.IndexByte(b[i+1:], magic0)
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		switch {
		case i < 0:
			if len(b) > 0 {
				d.skip(len(b))
			}
			return frame{}, false
		case i > 0:
			d.skip(i)
			b = b[i:]
		}
		if len(b) < headerLen {
			return frame{}, false
		}
		if binary.BigEndian.Uint32(b[12:16]) != crc32.Checksum(b[:12], castagnoli) {
			d.crcErrors++
			d.skip(1)
			continue
		}
		n := int(binary.BigEndian.Uint16(b[10:12]))
		f := frame{
			kind: b[2] & 0x0f,
			ch:   b[3],
			gen:  b[4],
			wnd:  b[5],
			seq:  binary.BigEndian.Uint16(b[6:8]),
			ack:  binary.BigEndian.Uint16(b[8:10]),
		}
		if b[2]>>4 != protoVersion || n > MaxPayload {
			d.badHeaders++
			d.skip(1)
			continue
		}
		total := encodedLen(n)
		if len(b) < total {
			return frame{}, false
		}
		if n > 0 {
			if binary.BigEndian.Uint32(b[headerLen+n:total]) != crc32.Checksum(b[:headerLen+n], castagnoli) {
				d.crcErrors++
				d.skip(1)
				continue
			}
			f.payload = b[headerLen : headerLen+n]
		}
		if f.validate() != nil {
			d.badHeaders++
			d.skip(1)
			continue
		}
		d.off += total
		return f, true
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
