package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The -QR discovery protocol: one UDP request datagram, one answer datagram
// per page. All integers are big-endian. docs/discovery.md mirrors this.
const (
	// DefaultPort is the UDP port of the discovery responder.
	DefaultPort = 50100

	// protoMagic opens every datagram: "KDQR".
	protoMagic = "KDQR"
	// protoVersion is the only protocol version this package speaks.
	protoVersion = 1

	// typeQuery is a client's request for one page of the server list.
	typeQuery = 1
	// typeAnswer carries the host name and one page of server lines.
	typeAnswer = 2
	// typeBusy says the query was refused by the per-source rate limit.
	typeBusy = 3

	// flagMore (answer flags bit 0) says another page follows.
	flagMore = 0x01

	// headerSize is magic(4) version(1) type(1) flags(1) page(1) id(8).
	headerSize = 16
	// RequestSize is the exact size of a request datagram. Requests are
	// padded with zeros so that an answer (at most MaxDatagramSize) is never
	// more than three times the request: the responder cannot be used as a
	// traffic amplifier.
	RequestSize = 400
	// MaxDatagramSize bounds every datagram of the protocol, in bytes.
	MaxDatagramSize = 1200
	// MaxPages is the most answer pages a client asks for; lines beyond
	// them are reported as truncated.
	MaxPages = 16
	// maxHostLen is the longest host name an answer carries.
	maxHostLen = 255
)

// request is a decoded query datagram.
type request struct {
	Page uint8  // 0-based page of the server list asked for
	ID   uint64 // client-chosen query id, echoed in the answer
}

// response is a decoded answer or busy datagram.
type response struct {
	Type  uint8 // typeAnswer or typeBusy
	More  bool  // another page follows (answers only)
	Page  uint8
	ID    uint64
	Host  string   // answers only
	Lines []string // answers only
}

var (
	errShort   = errors.New("datagram too short")
	errMagic   = errors.New("not a kdsrv discovery datagram (bad magic)")
	errVersion = errors.New("unsupported discovery protocol version")
)

func putHeader(b []byte, typ, flags, page uint8, id uint64) {
	copy(b, protoMagic)
	b[4] = protoVersion
	b[5] = typ
	b[6] = flags
	b[7] = page
	binary.BigEndian.PutUint64(b[8:16], id)
}

// checkDatagram checks the size of a datagram (what: "request" or
// "answer") and its header's magic and version.
func checkDatagram(what string, b []byte) error {
	if len(b) > MaxDatagramSize {
		return fmt.Errorf("%s of %d bytes exceeds %d", what, len(b), MaxDatagramSize)
	}
	if len(b) < headerSize {
		return errShort
	}
	if string(b[:4]) != protoMagic {
		return errMagic
	}
	if b[4] != protoVersion {
		return fmt.Errorf("%w %d (this build speaks %d)", errVersion, b[4], protoVersion)
	}
	return nil
}

func encodeRequest(r request) []byte {
	b := make([]byte, RequestSize)
	putHeader(b, typeQuery, 0, r.Page, r.ID)
	return b
}

// decodeRequest parses a query datagram. Datagrams shorter than RequestSize
// are rejected (anti-amplification); longer ones are accepted up to
// MaxDatagramSize so that later versions may add fields.
func decodeRequest(b []byte) (request, error) {
	if err := checkDatagram("request", b); err != nil {
		return request{}, err
	}
	if len(b) < RequestSize {
		return request{}, fmt.Errorf("%w: request of %d bytes, want at least %d", errShort, len(b), RequestSize)
	}
	if b[5] != typeQuery {
		return request{}, fmt.Errorf("datagram type %d is not a query", b[5])
	}
	if b[6] != 0 {
		return request{}, fmt.Errorf("unknown request flags 0x%02x", b[6])
	}
	return request{Page: b[7], ID: binary.BigEndian.Uint64(b[8:16])}, nil
}

func encodeBusy(page uint8, id uint64) []byte {
	b := make([]byte, headerSize)
	putHeader(b, typeBusy, 0, page, id)
	return b
}

// pageLines returns the lines of page p when lines are packed greedily into
// answers of at most MaxDatagramSize bytes with the given host name, and
// whether more pages follow.
func pageLines(host string, lines []string, p int) ([]string, bool) {
	budget := MaxDatagramSize - headerSize - 1 - len(host) - 1
	start, page := 0, 0
	for {
		end, used := start, 0
		for end < len(lines) && end-start < 255 && used+1+len(lines[end]) <= budget {
			used += 1 + len(lines[end])
			end++
		}
		if end == start && end < len(lines) {
			end++ // cannot happen with validated lines; never loop forever
		}
		if page == p {
			return lines[start:end], end < len(lines)
		}
		if end >= len(lines) {
			return nil, false
		}
		start, page = end, page+1
	}
}

// encodeAnswer builds answer page p. host must be at most maxHostLen bytes
// and every line at most MaxLineLen bytes (the responder ensures both).
func encodeAnswer(host string, page uint8, id uint64, lines []string, more bool) []byte {
	var flags uint8
	if more {
		flags |= flagMore
	}
	n := headerSize + 1 + len(host) + 1
	for _, l := range lines {
		n += 1 + len(l)
	}
	b := make([]byte, headerSize, n)
	putHeader(b, typeAnswer, flags, page, id)
	b = append(b, byte(len(host)))
	b = append(b, host...)
	b = append(b, byte(len(lines)))
	for _, l := range lines {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return b
}

// decodeResponse parses an answer or busy datagram.
func decodeResponse(b []byte) (response, error) {
	if err := checkDatagram("answer", b); err != nil {
		return response{}, err
	}
	r := response{Type: b[5], More: b[6]&flagMore != 0, Page: b[7], ID: binary.BigEndian.Uint64(b[8:16])}
	switch r.Type {
	case typeBusy:
		if len(b) != headerSize || b[6] != 0 {
			return response{}, errors.New("malformed busy datagram")
		}
		return r, nil
	case typeAnswer:
	default:
		return response{}, fmt.Errorf("datagram type %d is not an answer", r.Type)
	}
	if b[6]&^flagMore != 0 {
		return response{}, fmt.Errorf("unknown answer flags 0x%02x", b[6])
	}
	rest := b[headerSize:]
	host, rest, err := readString(rest)
	if err != nil {
		return response{}, fmt.Errorf("answer host name: %w", err)
	}
	r.Host = host
	if len(rest) < 1 {
		return response{}, fmt.Errorf("answer line count: %w", errShort)
	}
	n := int(rest[0])
	rest = rest[1:]
	r.Lines = make([]string, 0, n)
	for i := 0; i < n; i++ {
		var l string
		l, rest, err = readString(rest)
		if err != nil {
			return response{}, fmt.Errorf("answer line %d: %w", i+1, err)
		}
		if err := checkLine(l); err != nil {
			return response{}, fmt.Errorf("answer line %d: %w", i+1, err)
		}
		r.Lines = append(r.Lines, l)
	}
	if len(rest) != 0 {
		return response{}, fmt.Errorf("%d unexpected bytes after the answer", len(rest))
	}
	return r, nil
}

// readString reads a length-prefixed (1 byte) printable ASCII string.
func readString(b []byte) (string, []byte, error) {
	if len(b) < 1 {
		return "", nil, errShort
	}
	n := int(b[0])
	if len(b) < 1+n {
		return "", nil, errShort
	}
	s := b[1 : 1+n]
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return "", nil, fmt.Errorf("byte 0x%02x outside printable ASCII", c)
		}
	}
	return string(s), b[1+n:], nil
}
