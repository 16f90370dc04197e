package wire

import (
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the variable-length fields of typed payloads.
const (
	// MaxSoftware is the longest software string in Hello/HelloReply.
	MaxSoftware = 255
	// MaxTarget is the longest target spec an Open frame may carry.
	MaxTarget = 4096
	// MaxText is the longest display text (Opened info, Error message,
	// State text); encoders truncate longer text at a UTF-8 boundary.
	MaxText = 1024
	// MaxKDPayload is the largest KD packet payload a KD frame can carry
	// (the KD link layer itself limits packets to 4000 bytes).
	MaxKDPayload = MaxPayload - 2
)

// Hello flag and field layouts.
const (
	// HelloReplyPasswordRequired (HelloReply flags bit 0): the server
	// requires the Auth exchange.
	HelloReplyPasswordRequired uint16 = 0x0001
	// OpenTakeOver (Open flags bit 0): take the target over even if another
	// session owns it.
	OpenTakeOver uint16 = 0x0001
	// OpenWatch (Open flags bit 1): watch the target's console only. The
	// server opens the link if nobody has (without break-in or RESET),
	// answers Opened and then sends Console frames; the watcher owns
	// nothing and may not send KD frames. Not combinable with OpenTakeOver.
	OpenWatch uint16 = 0x0002

	openFlagsKnown = OpenTakeOver | OpenWatch
)

const (
	helloFixed      = 2 + 2 + NonceSize + 1            // min, max, nonce, software length
	helloReplyFixed = 2 + 2 + NonceSize + SaltSize + 1 // version, flags, nonce, salt, software length
)

// appendHelloHead appends the start that Hello and HelloReply share: two
// u16 fields (Hello: min and max version; HelloReply: version and flags)
// and the nonce.
func appendHelloHead(b []byte, x, y uint16, nonce *[NonceSize]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, x)
	b = binary.BigEndian.AppendUint16(b, y)
	return append(b, nonce[:]...)
}

// helloHead parses what appendHelloHead wrote; p holds at least 4+NonceSize
// bytes.
func helloHead(p []byte) (x, y uint16, nonce [NonceSize]byte) {
	copy(nonce[:], p[4:4+NonceSize])
	return binary.BigEndian.Uint16(p[0:]), binary.BigEndian.Uint16(p[2:]), nonce
}

// Hello is the client's first frame.
type Hello struct {
	MinVersion, MaxVersion uint16
	Nonce                  [NonceSize]byte
	Software               string // e.g. "kdclient/0.1"; at most MaxSoftware bytes
}

// EncodeHello returns the payload of a Hello frame. Software is sanitised
// and truncated to MaxSoftware bytes.
func EncodeHello(h Hello) []byte {
	b := appendHelloHead(make([]byte, 0, helloFixed+len(h.Software)), h.MinVersion, h.MaxVersion, &h.Nonce)
	return appendSoftware(b, h.Software)
}

// DecodeHello parses a Hello payload. Bytes after the software string are
// ignored: later protocol versions may append fields there, because Hello is
// sent before a version is agreed.
func DecodeHello(p []byte) (Hello, error) {
	var h Hello
	if err := needAtLeast("Hello", p, helloFixed); err != nil {
		return h, err
	}
	h.MinVersion, h.MaxVersion, h.Nonce = helloHead(p)
	n := int(p[helloFixed-1])
	rest := p[helloFixed:]
	if len(rest) < n {
		return h, protoErr(BadFrame, "Hello software string of %d bytes overruns the payload", n)
	}
	if h.MinVersion == 0 || h.MinVersion > h.MaxVersion {
		return h, protoErr(BadFrame, "Hello version range %d-%d is invalid", h.MinVersion, h.MaxVersion)
	}
	h.Software = clipText(string(rest[:n]), MaxSoftware)
	return h, nil
}

// HelloReply is the server's answer to Hello.
type HelloReply struct {
	Version          uint16
	PasswordRequired bool
	Nonce            [NonceSize]byte
	// Salt is the server's password salt: random per server process, the
	// same for every connection to it (so the server derives its key once),
	// different between servers (so no precomputed dictionary serves
	// against two of them). All zero when no password is required.
	Salt     [SaltSize]byte
	Software string // e.g. "kdsrv/0.1"; at most MaxSoftware bytes
}

// EncodeHelloReply returns the payload of a HelloReply frame.
func EncodeHelloReply(r HelloReply) []byte {
	var flags uint16
	if r.PasswordRequired {
		flags |= HelloReplyPasswordRequired
	}
	b := appendHelloHead(make([]byte, 0, helloReplyFixed+len(r.Software)), r.Version, flags, &r.Nonce)
	b = append(b, r.Salt[:]...)
	return appendSoftware(b, r.Software)
}

// DecodeHelloReply parses a HelloReply payload.
func DecodeHelloReply(p []byte) (HelloReply, error) {
	var r HelloReply
	if err := needAtLeast("HelloReply", p, helloReplyFixed); err != nil {
		return r, err
	}
	var flags uint16
	r.Version, flags, r.Nonce = helloHead(p)
	if err := checkFlags("HelloReply", flags, HelloReplyPasswordRequired); err != nil {
		return r, err
	}
	r.PasswordRequired = flags&HelloReplyPasswordRequired != 0
	copy(r.Salt[:], p[4+NonceSize:4+NonceSize+SaltSize])
	n := int(p[helloReplyFixed-1])
	if len(p) != helloReplyFixed+n {
		return r, protoErr(BadFrame, "HelloReply payload is %d bytes, its software string needs exactly %d", len(p), helloReplyFixed+n)
	}
	r.Software = clipText(string(p[helloReplyFixed:]), MaxSoftware)
	return r, nil
}

// EncodeProof returns the payload of an Auth or AuthOK frame.
func EncodeProof(proof [ProofSize]byte) []byte {
	return append([]byte(nil), proof[:]...)
}

// DecodeProof parses the payload of an Auth or AuthOK frame.
func DecodeProof(p []byte) ([ProofSize]byte, error) {
	var proof [ProofSize]byte
	err := copyExact("authentication proof", proof[:], p)
	return proof, err
}

// Open asks the server to open a target link.
type Open struct {
	Target   string // canonical trans=@{...} text; opaque to this package
	TakeOver bool   // take the target over from a session that owns it
	Watch    bool   // watch the target's console only (OpenWatch)
}

// EncodeOpen returns the payload of an Open frame. The decoder refuses
// targets longer than MaxTarget bytes or not valid UTF-8.
func EncodeOpen(o Open) []byte {
	t := o.Target
	if len(t) > 0xFFFF {
		t = t[:0xFFFF]
	}
	var flags uint16
	if o.TakeOver {
		flags |= OpenTakeOver
	}
	if o.Watch {
		flags |= OpenWatch
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 4+len(t)), flags)
	return appendField16(b, t)
}

// DecodeOpen parses an Open payload.
func DecodeOpen(p []byte) (Open, error) {
	var o Open
	if err := needAtLeast("Open", p, 4); err != nil {
		return o, err
	}
	flags := binary.BigEndian.Uint16(p[0:])
	if err := checkFlags("Open", flags, openFlagsKnown); err != nil {
		return o, err
	}
	if flags&OpenTakeOver != 0 && flags&OpenWatch != 0 {
		return o, protoErr(BadFrame, "Open asks both to take over and to watch: a console watcher owns nothing to take over")
	}
	t, err := lastField16("Open", "target", p, 2)
	if err != nil {
		return o, err
	}
	if len(t) > MaxTarget {
		return o, protoErr(BadFrame, "Open target spec is %d bytes, the limit is %d", len(t), MaxTarget)
	}
	if !utf8.Valid(t) {
		return o, protoErr(BadFrame, "Open target spec is not valid UTF-8")
	}
	o.Target = string(t)
	o.TakeOver = flags&OpenTakeOver != 0
	o.Watch = flags&OpenWatch != 0
	return o, nil
}

// Opened is the server's answer to a successful Open.
type Opened struct {
	Session uint32 // server-assigned session id
	Info    string // short description of the target, at most MaxText bytes
}

// EncodeOpened returns the payload of an Opened frame.
func EncodeOpened(o Opened) []byte {
	info := clipText(o.Info, MaxText)
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 6+len(info)), o.Session)
	return appendField16(b, info)
}

// DecodeOpened parses an Opened payload.
func DecodeOpened(p []byte) (Opened, error) {
	var o Opened
	if err := needAtLeast("Opened", p, 6); err != nil {
		return o, err
	}
	o.Session = binary.BigEndian.Uint32(p[0:])
	info, err := lastField16("Opened", "info", p, 4)
	if err != nil {
		return o, err
	}
	o.Info = clipText(string(info), MaxText)
	return o, nil
}

// EncodeKD returns the payload of a KD frame carrying one KD data packet.
func EncodeKD(pktType uint16, payload []byte) []byte {
	return AppendKD(make([]byte, 0, 2+len(payload)), pktType, payload)
}

// AppendKD appends a KD frame payload to dst.
func AppendKD(dst []byte, pktType uint16, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, pktType)
	return append(dst, payload...)
}

// DecodeKD parses a KD payload. The returned payload aliases p.
func DecodeKD(p []byte) (pktType uint16, payload []byte, err error) {
	if err := needAtLeast("KD", p, 2); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint16(p), p[2:], nil
}

// EncodeError returns the payload of an Error frame. The message is
// sanitised and truncated to MaxText bytes.
func EncodeError(code Code, msg string) []byte {
	return encodeCodeText(uint16(code), msg)
}

// DecodeError parses an Error payload. The message is sanitised for display
// (invalid UTF-8 and control characters become U+FFFD) and truncated to
// MaxText bytes.
func DecodeError(p []byte) (*RemoteError, error) {
	code, msg, err := decodeCodeText("Error", p)
	if err != nil {
		return nil, err
	}
	return &RemoteError{Code: Code(code), Msg: msg}, nil
}

// Notice is a non-fatal message from the server (a Notice frame): a KD
// packet it refused to forward, a packet the target never acknowledged, a
// difference between the requested and the open target link. The session
// goes on.
type Notice struct {
	Code Code
	Text string
}

func (n Notice) String() string {
	if n.Text == "" {
		return n.Code.String()
	}
	return n.Text
}

// EncodeNotice returns the payload of a Notice frame: code u16 + UTF-8
// text, sanitised and truncated to MaxText bytes.
func EncodeNotice(code Code, text string) []byte {
	return encodeCodeText(uint16(code), text) // the layout of Error
}

// DecodeNotice parses a Notice payload; the text is sanitised for display
// and truncated to MaxText bytes.
func DecodeNotice(p []byte) (Notice, error) {
	code, text, err := decodeCodeText("Notice", p)
	return Notice{Code: Code(code), Text: text}, err
}

// EncodeBye returns the payload of a Bye frame: empty for a normal close
// (OK), else the reason code.
func EncodeBye(reason Code) []byte {
	if reason == OK {
		return nil
	}
	return binary.BigEndian.AppendUint16(nil, uint16(reason))
}

// DecodeBye parses a Bye payload (empty or a 2-byte reason code).
func DecodeBye(p []byte) (Code, error) {
	switch len(p) {
	case 0:
		return OK, nil
	case 2:
		return Code(binary.BigEndian.Uint16(p)), nil
	}
	return OK, protoErr(BadFrame, "Bye payload is %d bytes, want 0 or 2", len(p))
}

// State is the payload of a State frame.
type State struct {
	State StateCode
	Text  string // optional detail for display, at most MaxText bytes
}

// EncodeState returns the payload of a State frame.
func EncodeState(s State) []byte {
	return encodeCodeText(uint16(s.State), s.Text)
}

// DecodeState parses a State payload.
func DecodeState(p []byte) (State, error) {
	code, text, err := decodeCodeText("State", p)
	return State{State: StateCode(code), Text: text}, err
}

// Control is a Control request (client to server) or reply (server to
// client). A reply carries the request's ID and Command.
type Control struct {
	ID      uint32  // chosen by the requester, echoed in the reply
	Command Command // what to do
	Status  Code    // requests: OK; replies: OK or why the request failed
	Body    []byte  // command-specific
}

const controlFixed = 4 + 2 + 2

// EncodeControl returns the payload of a Control frame.
func EncodeControl(c Control) []byte {
	b := make([]byte, 0, controlFixed+len(c.Body))
	b = binary.BigEndian.AppendUint32(b, c.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(c.Command))
	b = binary.BigEndian.AppendUint16(b, uint16(c.Status))
	return append(b, c.Body...)
}

// DecodeControl parses a Control payload. Body aliases p.
func DecodeControl(p []byte) (Control, error) {
	if err := needAtLeast("Control", p, controlFixed); err != nil {
		return Control{}, err
	}
	return Control{
		ID:      binary.BigEndian.Uint32(p[0:]),
		Command: Command(binary.BigEndian.Uint16(p[4:])),
		Status:  Code(binary.BigEndian.Uint16(p[6:])),
		Body:    p[controlFixed:],
	}, nil
}

// DecodePing parses a Ping or Pong payload.
func DecodePing(p []byte) ([PingSize]byte, error) {
	var v [PingSize]byte
	err := copyExact("Ping/Pong payload", v[:], p)
	return v, err
}

// needAtLeast refuses a payload of type what shorter than n bytes.
func needAtLeast(what string, p []byte, n int) error {
	if len(p) < n {
		return protoErr(BadFrame, "%s payload is %d bytes, want at least %d", what, len(p), n)
	}
	return nil
}

// copyExact copies a fixed-size payload p, named what, into dst; p must
// be exactly len(dst) bytes.
func copyExact(what string, dst, p []byte) error {
	if len(p) != len(dst) {
		return protoErr(BadFrame, "%s is %d bytes, want %d", what, len(p), len(dst))
	}
	copy(dst, p)
	return nil
}

// checkFlags refuses flag bits outside known in a payload of type what.
func checkFlags(what string, flags, known uint16) error {
	if flags&^known != 0 {
		return protoErr(BadFrame, "%s has unknown flag bits 0x%04x", what, flags&^known)
	}
	return nil
}

// appendField16 appends a u16-length-prefixed string field (the Open
// target, the Opened info); s is at most 0xFFFF bytes.
func appendField16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// lastField16 returns the u16-length-prefixed field named field that starts
// at offset at of a payload of type what (p holds at least at+2 bytes) and
// must end the payload exactly.
func lastField16(what, field string, p []byte, at int) ([]byte, error) {
	n := int(binary.BigEndian.Uint16(p[at:]))
	if len(p) != at+2+n {
		return nil, protoErr(BadFrame, "%s payload is %d bytes, its %d-byte %s needs exactly %d", what, len(p), n, field, at+2+n)
	}
	return p[at+2:], nil
}

// appendSoftware appends the software string field of Hello and
// HelloReply: a length byte and the text, sanitised and cut to MaxSoftware
// bytes.
func appendSoftware(b []byte, software string) []byte {
	sw := clipText(software, MaxSoftware)
	b = append(b, byte(len(sw)))
	return append(b, sw...)
}

// encodeCodeText returns the layout shared by Error, Notice and State
// payloads: a u16 code and UTF-8 text, sanitised and cut to MaxText bytes.
func encodeCodeText(code uint16, text string) []byte {
	text = clipText(text, MaxText)
	b := make([]byte, 0, 2+len(text))
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, text...)
}

// decodeCodeText parses a code-and-text payload of type what; the text is
// sanitised for display and cut to MaxText bytes.
func decodeCodeText(what string, p []byte) (code uint16, text string, err error) {
	if err := needAtLeast(what, p, 2); err != nil {
		return 0, "", err
	}
	return binary.BigEndian.Uint16(p), clipText(string(p[2:]), MaxText), nil
}

// clipText makes peer-supplied or user-supplied text safe to display and to
// encode: invalid UTF-8 and control characters become U+FFFD, and the result
// is cut to at most max bytes on a rune boundary. It is idempotent.
func clipText(s string, max int) string {
	if needsSanitising(s) {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return utf8.RuneError
			}
			return r
		}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func needsSanitising(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0
		}
	}
	return false
}
