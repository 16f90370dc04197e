package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// A minimal DNS message codec, enough for DNS-SD over multicast DNS
// (RFC 1035 wire format, RFC 6762/6763 usage). Names are dotted strings
// ending in "."; a '.' or '\' inside a label is escaped with '\'.
const (
	dnsTypeA    = 1
	dnsTypePTR  = 12
	dnsTypeTXT  = 16
	dnsTypeAAAA = 28
	dnsTypeSRV  = 33
	dnsTypeANY  = 255

	dnsClassIN = 1
	// dnsClassTop is the top bit of the class field: "unicast response
	// requested" in questions, "cache flush" in records (RFC 6762).
	dnsClassTop = 0x8000

	dnsFlagResponse = 0x8000 // QR
	dnsFlagAuth     = 0x0400 // AA
	// dnsMaxMsg bounds the messages we build and accept (a multicast DNS
	// message fits one Ethernet frame in practice; RFC 6762 allows 9000).
	dnsMaxMsg = 9000
)

type dnsQuestion struct {
	Name  string
	Type  uint16
	Class uint16 // including the unicast-response bit
}

type dnsRR struct {
	Name  string
	Type  uint16
	Class uint16 // including the cache-flush bit
	TTL   uint32

	Target   string     // PTR, SRV
	Port     uint16     // SRV
	Priority uint16     // SRV
	Weight   uint16     // SRV
	Text     []string   // TXT
	Addr     netip.Addr // A, AAAA
}

type dnsMsg struct {
	ID        uint16
	Flags     uint16
	Questions []dnsQuestion
	Answers   []dnsRR // answer, authority and additional sections, in order
	NAnswer   int     // how many of Answers were in the answer section
}

var errDNSShort = errors.New("dns message truncated")

// splitName splits a dotted name into labels, honouring '\' escapes.
func splitName(name string) ([]string, error) {
	if name == "." || name == "" {
		return nil, nil
	}
	var labels []string
	var cur strings.Builder
	esc := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case esc:
			cur.WriteByte(c)
			esc = false
		case c == '\\':
			esc = true
		case c == '.':
			labels = append(labels, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		labels = append(labels, cur.String())
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return nil, fmt.Errorf("dns name %q has an empty or over-long label", name)
		}
	}
	return labels, nil
}

// escapeLabel escapes a raw label for use in a dotted name.
func escapeLabel(l string) string {
	l = strings.ReplaceAll(l, `\`, `\\`)
	return strings.ReplaceAll(l, ".", `\.`)
}

func appendName(b []byte, name string) ([]byte, error) {
	labels, err := splitName(name)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
		n += 1 + len(l)
	}
	if n > 255 {
		return nil, fmt.Errorf("dns name %q is longer than 255 bytes", name)
	}
	return append(b, 0), nil
}

func (m *dnsMsg) encode() ([]byte, error) {
	b := make([]byte, 12, 512)
	binary.BigEndian.PutUint16(b[0:], m.ID)
	binary.BigEndian.PutUint16(b[2:], m.Flags)
	binary.BigEndian.PutUint16(b[4:], uint16(len(m.Questions)))
	binary.BigEndian.PutUint16(b[6:], uint16(m.NAnswer))
	binary.BigEndian.PutUint16(b[10:], uint16(len(m.Answers)-m.NAnswer))
	var err error
	for _, q := range m.Questions {
		if b, err = appendName(b, q.Name); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint16(b, q.Type)
		b = binary.BigEndian.AppendUint16(b, q.Class)
	}
	for _, rr := range m.Answers {
		if b, err = appendName(b, rr.Name); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint16(b, rr.Type)
		b = binary.BigEndian.AppendUint16(b, rr.Class)
		b = binary.BigEndian.AppendUint32(b, rr.TTL)
		lenAt := len(b)
		b = append(b, 0, 0)
		switch rr.Type {
		case dnsTypePTR:
			b, err = appendName(b, rr.Target)
		case dnsTypeSRV:
			b = binary.BigEndian.AppendUint16(b, rr.Priority)
			b = binary.BigEndian.AppendUint16(b, rr.Weight)
			b = binary.BigEndian.AppendUint16(b, rr.Port)
			b, err = appendName(b, rr.Target)
		case dnsTypeTXT:
			if len(rr.Text) == 0 {
				b = append(b, 0)
			}
			for _, s := range rr.Text {
				if len(s) > 255 {
					return nil, fmt.Errorf("dns TXT string of %d bytes", len(s))
				}
				b = append(b, byte(len(s)))
				b = append(b, s...)
			}
		case dnsTypeA:
			a := rr.Addr.As4()
			b = append(b, a[:]...)
		case dnsTypeAAAA:
			a := rr.Addr.As16()
			b = append(b, a[:]...)
		default:
			return nil, fmt.Errorf("dns: cannot encode record type %d", rr.Type)
		}
		if err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint16(b[lenAt:], uint16(len(b)-lenAt-2))
	}
	if len(b) > dnsMaxMsg {
		return nil, fmt.Errorf("dns message of %d bytes exceeds %d", len(b), dnsMaxMsg)
	}
	return b, nil
}

// readName decodes a possibly compressed name starting at off and returns
// it with the offset just after it.
func readName(msg []byte, off int) (string, int, error) {
	var sb strings.Builder
	end := -1
	total := 0
	for hops := 0; ; {
		if off >= len(msg) {
			return "", 0, errDNSShort
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				if sb.Len() == 0 {
					return ".", end, nil
				}
				return sb.String(), end, nil
			}
			if off+1+c > len(msg) {
				return "", 0, errDNSShort
			}
			total += 1 + c
			if total > 255 {
				return "", 0, errors.New("dns name longer than 255 bytes")
			}
			sb.WriteString(escapeLabel(string(msg[off+1 : off+1+c])))
			sb.WriteByte('.')
			off += 1 + c
		case 0xC0:
			if off+1 >= len(msg) {
				return "", 0, errDNSShort
			}
			ptr := (c&0x3F)<<8 | int(msg[off+1])
			if end < 0 {
				end = off + 2
			}
			if ptr >= off || hops > 32 {
				return "", 0, errors.New("dns name compression pointer loops or points forward")
			}
			hops++
			off = ptr
		default:
			return "", 0, fmt.Errorf("dns label type 0x%02x not supported", c&0xC0)
		}
	}
}

func decodeDNS(msg []byte) (*dnsMsg, error) {
	if len(msg) < 12 {
		return nil, errDNSShort
	}
	if len(msg) > dnsMaxMsg {
		return nil, fmt.Errorf("dns message of %d bytes exceeds %d", len(msg), dnsMaxMsg)
	}
	m := &dnsMsg{
		ID:    binary.BigEndian.Uint16(msg[0:]),
		Flags: binary.BigEndian.Uint16(msg[2:]),
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	an := int(binary.BigEndian.Uint16(msg[6:]))
	ns := int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	// Every question takes at least 5 bytes and every record at least 11:
	// reject counts the message cannot hold before allocating.
	if qd*5+(an+ns+ar)*11 > len(msg)-12 {
		return nil, errors.New("dns record counts exceed the message size")
	}
	off := 12
	for i := 0; i < qd; i++ {
		name, n, err := readName(msg, off)
		if err != nil {
			return nil, err
		}
		if n+4 > len(msg) {
			return nil, errDNSShort
		}
		m.Questions = append(m.Questions, dnsQuestion{
			Name:  name,
			Type:  binary.BigEndian.Uint16(msg[n:]),
			Class: binary.BigEndian.Uint16(msg[n+2:]),
		})
		off = n + 4
	}
	m.NAnswer = an
	for i := 0; i < an+ns+ar; i++ {
		name, n, err := readName(msg, off)
		if err != nil {
			return nil, err
		}
		if n+10 > len(msg) {
			return nil, errDNSShort
		}
		rr := dnsRR{
			Name:  name,
			Type:  binary.BigEndian.Uint16(msg[n:]),
			Class: binary.BigEndian.Uint16(msg[n+2:]),
			TTL:   binary.BigEndian.Uint32(msg[n+4:]),
		}
		rdlen := int(binary.BigEndian.Uint16(msg[n+8:]))
		start := n + 10
		if start+rdlen > len(msg) {
			return nil, errDNSShort
		}
		rd := msg[start : start+rdlen]
		switch rr.Type {
		case dnsTypePTR:
			t, e, err := readName(msg, start)
			if err != nil || e > start+rdlen {
				return nil, fmt.Errorf("dns PTR record: bad target")
			}
			rr.Target = t
		case dnsTypeSRV:
			if rdlen < 7 {
				return nil, errDNSShort
			}
			rr.Priority = binary.BigEndian.Uint16(rd[0:])
			rr.Weight = binary.BigEndian.Uint16(rd[2:])
			rr.Port = binary.BigEndian.Uint16(rd[4:])
			t, e, err := readName(msg, start+6)
			if err != nil || e > start+rdlen {
				return nil, fmt.Errorf("dns SRV record: bad target")
			}
			rr.Target = t
		case dnsTypeTXT:
			for p := 0; p < len(rd); {
				l := int(rd[p])
				if p+1+l > len(rd) {
					return nil, errDNSShort
				}
				if l > 0 {
					rr.Text = append(rr.Text, string(rd[p+1:p+1+l]))
				}
				p += 1 + l
			}
		case dnsTypeA:
			if rdlen != 4 {
				return nil, errors.New("dns A record: bad length")
			}
			rr.Addr = netip.AddrFrom4([4]byte(rd))
		case dnsTypeAAAA:
			if rdlen != 16 {
				return nil, errors.New("dns AAAA record: bad length")
			}
			rr.Addr = netip.AddrFrom16([16]byte(rd))
		}
		m.Answers = append(m.Answers, rr)
		off = start + rdlen
	}
	return m, nil
}

// sameName compares two DNS names case-insensitively (ASCII).
func sameName(a, b string) bool { return strings.EqualFold(a, b) }
