package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame is one decoded frame.
type Frame struct {
	Type    Type
	Flags   uint16 // header flag bits (FlagIgnorable); 0 for every frame version 1 sends
	Payload []byte
}

// AppendFrame appends a frame of type t with the given payload (header flags
// zero) to dst and returns the extended slice. It panics if payload is longer
// than MaxPayload: that is a programming error (Conn.Send checks and returns an
// error instead).
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	return AppendFrameFlags(dst, t, 0, payload)
}

// AppendFrameFlags is AppendFrame with explicit header flag bits.
func AppendFrameFlags(dst []byte, t Type, flags uint16, payload []byte) []byte {
	if len(payload) > MaxPayload {
		panic(fmt.Sprintf("wire: AppendFrame: %s payload of %d bytes exceeds MaxPayload (%d)", t, len(payload), MaxPayload))
	}
	dst = append(dst, Magic, byte(t))
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// decoderBufSize is the read-ahead buffer of a Decoder.
const decoderBufSize = 4096

// Decoder reads frames from a byte stream. It checks each header (magic,
// flag bits, length) before reading the payload, so a header announcing an
// oversized payload is refused without allocating anything for it.
//
// The Decoder reads ahead: once bytes of r have been handed to a Decoder,
// read the stream only through it.
//
// The payload buffer is reused: Frame.Payload returned by Next is valid only
// until the next call to Next. Copy it to keep it.
//
// Errors are sticky: after Next returns an error, the stream position is
// undefined and every later call returns the same error. A clean end of
// stream at a frame boundary is io.EOF; an end inside a frame is
// io.ErrUnexpectedEOF; header problems are *ProtocolError with code BadFrame
// or FrameTooLarge.
type Decoder struct {
	r   *bufio.Reader
	hdr [HeaderSize]byte
	buf []byte
	err error
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, decoderBufSize)}
}

// Next reads the next frame. See Decoder for the lifetime of Payload.
func (d *Decoder) Next() (Frame, error) {
	if d.err != nil {
		return Frame{}, d.err
	}
	f, err := d.next()
	if err != nil {
		d.err = err
	}
	return f, err
}

func (d *Decoder) next() (Frame, error) {
	if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
		return Frame{}, err // io.EOF at a frame boundary, io.ErrUnexpectedEOF inside
	}
	h, err := ParseHeader(d.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	n := int(h.Length)
	if cap(d.buf) < n {
		c := max(n, 2*cap(d.buf), 512)
		d.buf = make([]byte, min(c, MaxPayload))
	}
	p := d.buf[:n]
	if _, err := io.ReadFull(d.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("reading %d-byte %s payload: %w", n, h.Type, err)
	}
	return Frame{Type: h.Type, Flags: h.Flags, Payload: p}, nil
}

// Header is a parsed frame header.
type Header struct {
	Type   Type
	Flags  uint16
	Length uint32
}

// ParseHeader checks and parses the first HeaderSize bytes of b. It refuses
// a bad magic byte or unknown flag bits (BadFrame) and a length above
// MaxPayload (FrameTooLarge). Unknown frame types are not refused here: what
// to do with them depends on the connection's state.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, protoErr(BadFrame, "frame header is %d bytes, want %d", len(b), HeaderSize)
	}
	if b[0] != Magic {
		return Header{}, protoErr(BadFrame, "bad magic byte 0x%02x (want 0x%02x): the peer does not speak the kdsrv protocol or the stream lost sync", b[0], Magic)
	}
	h := Header{
		Type:   Type(b[1]),
		Flags:  binary.BigEndian.Uint16(b[2:4]),
		Length: binary.BigEndian.Uint32(b[4:8]),
	}
	if h.Flags&^flagsKnown != 0 {
		return Header{}, protoErr(BadFrame, "%s frame has reserved flag bits 0x%04x set", h.Type, h.Flags&^flagsKnown)
	}
	if h.Length > MaxPayload {
		return Header{}, protoErr(FrameTooLarge, "%s frame announces %d payload bytes, the limit is %d", h.Type, h.Length, MaxPayload)
	}
	return h, nil
}
