package kd

import (
	"encoding/binary"
)

// The KD payload structures are fixed little-endian layouts. Each one is
// described once, as a list of wireFields (the offset of a field and the Go
// value that holds it), and that one list drives both its decoder and its
// encoder, so the two cannot drift apart.

// wireField is one field of a fixed layout: its byte offset and a pointer
// to the value (or a slice of consecutive values) that holds it. Supported
// values: *uint8, *bool (one byte, 0 or 1), *uint16, *uint32, *APINumber
// (u32), *uint64, []uint64 (consecutive u64s), []*uint16 and []*uint64
// (consecutive fields listed by pointer), []byte and [][16]byte (raw bytes).
type wireField struct {
	off int
	v   any
}

// getFields reads every field of fs from b, which holds the layout from
// offset base on (base is non-zero for a union stored on its own).
func getFields(b []byte, base int, fs ...wireField) {
	le := binary.LittleEndian
	for _, f := range fs {
		b := b[f.off-base:]
		switch p := f.v.(type) {
		case *uint8:
			*p = b[0]
		case *bool:
			*p = b[0] != 0
		case *uint16:
			*p = le.Uint16(b)
		case *uint32:
			*p = le.Uint32(b)
		case *APINumber:
			*p = APINumber(le.Uint32(b))
		case *uint64:
			*p = le.Uint64(b)
		case []uint64:
			for i := range p {
				p[i] = le.Uint64(b[8*i:])
			}
		case []*uint16:
			for i, q := range p {
				*q = le.Uint16(b[2*i:])
			}
		case []*uint64:
			for i, q := range p {
				*q = le.Uint64(b[8*i:])
			}
		case []byte:
			copy(p, b)
		case [][16]byte:
			for i := range p {
				copy(p[i][:], b[16*i:])
			}
		default:
			panic("kd: wireField of an unsupported type")
		}
	}
}

// putFields stores every field of fs in b (laid out as for getFields).
// Bytes no field covers are left as they are.
func putFields(b []byte, base int, fs ...wireField) {
	le := binary.LittleEndian
	for _, f := range fs {
		b := b[f.off-base:]
		switch p := f.v.(type) {
		case *uint8:
			b[0] = *p
		case *bool:
			b[0] = 0
			if *p {
				b[0] = 1
			}
		case *uint16:
			le.PutUint16(b, *p)
		case *uint32:
			le.PutUint32(b, *p)
		case *APINumber:
			le.PutUint32(b, uint32(*p))
		case *uint64:
			le.PutUint64(b, *p)
		case []uint64:
			for i, v := range p {
				le.PutUint64(b[8*i:], v)
			}
		case []*uint16:
			for i, q := range p {
				le.PutUint16(b[2*i:], *q)
			}
		case []*uint64:
			for i, q := range p {
				le.PutUint64(b[8*i:], *q)
			}
		case []byte:
			copy(b, p)
		case [][16]byte:
			for i := range p {
				copy(b[16*i:], p[i][:])
			}
		default:
			panic("kd: wireField of an unsupported type")
		}
	}
}

// moveFields reads (enc false) or writes (enc true) the fields fs at b,
// laid out as for getFields.
func moveFields(b []byte, base int, enc bool, fs []wireField) {
	if enc {
		putFields(b, base, fs...)
	} else {
		getFields(b, base, fs...)
	}
}

// A wireFunc moves the fields of one structure between b, which holds the
// structure, and the Go value the function is bound to: it is a method
// value such as m.wire, whose body is one moveFields call listing the
// fields. Decoder and encoder share it.
type wireFunc func(b []byte, enc bool)

// decodeFixed reads the size-byte structure named what from the start of
// payload with wire and returns the extra data after it (nil when there is
// none, aliasing payload otherwise). It fails with an error wrapping
// ErrPayloadTooShort, reading nothing, when payload is shorter than size.
func decodeFixed(payload []byte, what string, size int, wire wireFunc) ([]byte, error) {
	if len(payload) < size {
		return nil, shortPayload(what, len(payload), size)
	}
	wire(payload, false)
	if len(payload) > size {
		return payload[size:], nil
	}
	return nil, nil
}

// appendFixed appends the size-byte structure written by wire (zero
// wherever it writes no field) followed by extra to dst.
func appendFixed(dst []byte, size int, extra []byte, wire wireFunc) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	wire(dst[start:], true)
	return append(dst, extra...)
}
