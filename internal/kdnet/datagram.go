package kdnet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Datagram layout constants (see the package documentation).
const (
	Magic        = "MDBG" // first four bytes of every datagram
	HeaderSize   = 6      // magic(4) version(1) channel(1); sent in clear
	MetadataSize = 8      // big-endian seq<<8 | dir<<7 | pad; encrypted
	TagSize      = 16     // truncated HMAC-SHA256; also the CBC IV

	// Overhead is the fixed per-datagram overhead, not counting 0..15 bytes
	// of padding.
	Overhead = HeaderSize + MetadataSize + TagSize

	// MinDatagram is the shortest well-formed datagram: one AES block
	// (metadata plus up to 8 payload bytes) between header and tag.
	MinDatagram = HeaderSize + aes.BlockSize + TagSize

	// MaxDatagram is the largest datagram Seal produces and Open accepts,
	// and the receive buffer size a socket reader should use. A KD packet is
	// at most 16 + 4000 bytes (4054-byte datagram); the limit leaves
	// headroom for targets with larger transport buffers.
	MaxDatagram = 8192

	// MaxPayload is the largest payload that fits in MaxDatagram.
	MaxPayload = (MaxDatagram-HeaderSize-TagSize)/aes.BlockSize*aes.BlockSize - MetadataSize

	// MaxSeq is the largest sequence number (56 bits).
	MaxSeq = 1<<56 - 1
)

// Metadata low-byte bits.
const (
	metaDirHostToTarget = 0x80 // dir bit: sent by the host (debugger)
	metaPadMask         = 0x0f // number of zero padding bytes
	metaReserved        = 0x70 // always zero
)

// Channel is the KDNET channel byte.
type Channel uint8

// Channels.
const (
	ChannelData    Channel = 0 // KD packets; data key
	ChannelControl Channel = 1 // handshake (poke/response); control key
)

var channelNames = [...]string{ChannelData: "data", ChannelControl: "control"}

// String returns "data", "control" or "channel(N)".
func (c Channel) String() string {
	if int(c) < len(channelNames) {
		return channelNames[c]
	}
	return fmt.Sprintf("channel(%d)", uint8(c))
}

// Errors returned by Seal and Open. Returned errors wrap one of these and add
// where it happened; test with errors.Is.
var (
	// ErrShort: the datagram is shorter than MinDatagram.
	ErrShort = errors.New("kdnet: datagram too short")
	// ErrMagic: the datagram does not start with "MDBG" (not KDNET traffic).
	ErrMagic = errors.New(`kdnet: datagram does not start with "MDBG"`)
	// ErrLength: the datagram is longer than MaxDatagram or its encrypted
	// part is not a whole number of AES blocks.
	ErrLength = errors.New("kdnet: bad datagram length")
	// ErrAuth: the tag does not match; the datagram was made with another
	// key, corrupted, or forged. Nothing from it was parsed.
	ErrAuth = errors.New("kdnet: datagram failed authentication")
	// ErrMalformed: an authentic datagram with an impossible padding field,
	// non-zero padding or non-zero reserved metadata bits.
	ErrMalformed = errors.New("kdnet: malformed datagram")
	// ErrChannel: the channel byte is neither data (0) nor control (1).
	ErrChannel = errors.New("kdnet: unknown channel")
	// ErrNoDataKey: a data-channel datagram was sealed or opened with a
	// Sealer that has no data key yet (the handshake has not completed).
	ErrNoDataKey = errors.New("kdnet: no data key yet")
	// ErrTooLarge: Seal was given a payload longer than MaxPayload.
	ErrTooLarge = errors.New("kdnet: payload too large")
	// ErrSeqRange: Seal was given a sequence number above MaxSeq.
	ErrSeqRange = errors.New("kdnet: sequence number out of range")
)

// Datagram is one decoded KDNET datagram.
type Datagram struct {
	Version      uint8   // header version byte; echo the peer's value
	Channel      Channel // ChannelData or ChannelControl
	Seq          uint64  // 56-bit sequence number
	HostToTarget bool    // direction bit: true when sent by the host (debugger)
	Payload      []byte  // KD packet, break-in byte or handshake body
}

// Sealer seals and opens datagrams for one session. It always holds the
// control key (control-channel AES key and, NOT-ed, the HMAC key of both
// channels) and, once the handshake is done, the data key.
//
// Create Sealers with NewSealer; the zero value is not usable. A Sealer is
// safe for concurrent use by multiple goroutines and never reveals key
// material when formatted.
type Sealer struct {
	hmacKey [KeySize]byte
	control cipher.Block
	data    cipher.Block // nil until WithDataKey
	macs    sync.Pool    // of *macState keyed with hmacKey
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSealer returns a Sealer for the control channel of the session keyed by
// controlKey (the user's a.b.c.d key, see [ParseKey] and [Key.Bytes]). Use
// [Sealer.WithDataKey] after the handshake to add the data channel.
func NewSealer(controlKey [KeySize]byte) (*Sealer, error) {
	block, err := aes.NewCipher(controlKey[:])
	if err != nil {
		return nil, fmt.Errorf("kdnet: control key: %w", err)
	}
	s := &Sealer{control: block}
	for i, b := range controlKey {
		s.hmacKey[i] = ^b
	}
	s.initPool()
	return s, nil
}

// WithDataKey returns a new Sealer that shares s's control key and also
// seals and opens the data channel with dataKey (see [DeriveDataKey]). s is
// unchanged, so a session can switch keys atomically by swapping pointers.
func (s *Sealer) WithDataKey(dataKey [KeySize]byte) (*Sealer, error) {
	block, err := aes.NewCipher(dataKey[:])
	if err != nil {
		return nil, fmt.Errorf("kdnet: data key: %w", err)
	}
	n := &Sealer{hmacKey: s.hmacKey, control: s.control, data: block}
	n.initPool()
	return n, nil
}

// HasDataKey reports whether s can seal and open data-channel datagrams.
func (s *Sealer) HasDataKey() bool { return s.data != nil }

func (s *Sealer) initPool() {
	key := s.hmacKey
	s.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key[:])} }
}

// String returns a fixed description; it never reveals key material.
func (s *Sealer) String() string {
	if s.HasDataKey() {
		return "kdnet.Sealer(control+data keys, redacted)"
	}
	return "kdnet.Sealer(control key, redacted)"
}

// Format implements fmt.Formatter so that no verb prints key material.
func (s *Sealer) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// tag computes the truncated HMAC of msg into out.
func (s *Sealer) tag(out []byte, msg []byte) {
	m := s.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(msg)
	copy(out, m.h.Sum(m.sum[:0])[:TagSize])
	s.macs.Put(m)
}

// block returns the AES cipher for ch, or ErrNoDataKey / ErrChannel
// (unwrapped; callers add context).
func (s *Sealer) block(ch Channel) (cipher.Block, error) {
	switch ch {
	case ChannelControl:
		return s.control, nil
	case ChannelData:
		if s.data == nil {
			return nil, ErrNoDataKey
		}
		return s.data, nil
	}
	return nil, ErrChannel
}

// padFor returns the number of zero bytes that align metadata+payload to
// the AES block size.
func padFor(n int) int { return (aes.BlockSize - (MetadataSize+n)%aes.BlockSize) % aes.BlockSize }

// SealedLen returns the length of the datagram that seals a payloadLen-byte
// payload.
func SealedLen(payloadLen int) int { return Overhead + payloadLen + padFor(payloadLen) }

// Seal appends the wire form of d to dst and returns the extended slice.
// d.Payload must not overlap dst's spare capacity. Seal fails if the channel
// is unknown or has no key, the payload exceeds MaxPayload, or d.Seq
// exceeds MaxSeq; dst is then returned unchanged.
func (s *Sealer) Seal(dst []byte, d Datagram) ([]byte, error) {
	block, err := s.block(d.Channel)
	switch {
	case errors.Is(err, ErrNoDataKey):
		return dst, fmt.Errorf("%w: cannot seal data-channel seq %d before the handshake; wait for the target's poke and answer it first", err, d.Seq)
	case err != nil:
		return dst, fmt.Errorf("%w %d: cannot seal seq %d (want 0 data or 1 control)", err, uint8(d.Channel), d.Seq)
	}
	n := len(d.Payload)
	if n > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes on the %s channel (limit %d); split the KD packet", ErrTooLarge, n, d.Channel, MaxPayload)
	}
	if d.Seq > MaxSeq {
		return dst, fmt.Errorf("%w: %d exceeds the 56-bit limit; start a new session", ErrSeqRange, d.Seq)
	}
	pad := padFor(n)
	total := Overhead + n + pad
	start := len(dst)
	dst = growLen(dst, total)
	out := dst[start:]
	end := total - TagSize

	copy(out, Magic)
	out[4] = d.Version
	out[5] = byte(d.Channel)
	meta := d.Seq<<8 | uint64(pad)
	if d.HostToTarget {
		meta |= metaDirHostToTarget
	}
	binary.BigEndian.PutUint64(out[HeaderSize:], meta)
	copy(out[HeaderSize+MetadataSize:], d.Payload)
	clear(out[HeaderSize+MetadataSize+n : end])

	s.tag(out[end:], out[:end])
	cipher.NewCBCEncrypter(block, out[end:]).CryptBlocks(out[HeaderSize:end], out[HeaderSize:end])
	return dst, nil
}

// growLen extends b by n bytes, reallocating only if its capacity is short.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// Open authenticates and decodes the datagram b. b is not modified; the
// returned Payload is a fresh slice.
//
// Order of checks: length and magic (ErrShort, ErrLength, ErrMagic), then
// the tag in constant time (ErrAuth) — the encrypted part is decrypted into
// a private buffer for that, as the tag covers the plaintext, but no
// decrypted byte is looked at before the tag matched — then the metadata
// (ErrMalformed). A datagram on an unknown channel is checked against the
// control key and reported as ErrAuth, or as ErrChannel if it is authentic.
// A data-channel datagram before the handshake is ErrNoDataKey.
func (s *Sealer) Open(b []byte) (Datagram, error) {
	if err := checkFrame(b); err != nil {
		return Datagram{}, err
	}
	return s.OpenInPlace(append([]byte(nil), b...))
}

// OpenInPlace is Open without the copy: it decrypts b in place and the
// returned Payload aliases b. Whatever the result, b's contents are
// overwritten; use it on receive buffers that are discarded or reused.
func (s *Sealer) OpenInPlace(b []byte) (Datagram, error) {
	if err := checkFrame(b); err != nil {
		return Datagram{}, err
	}
	ch := Channel(b[5])
	block, err := s.block(ch)
	switch {
	case errors.Is(err, ErrChannel):
		// Authenticate with the control key so that a corrupted channel
		// byte reads as ErrAuth like any other corruption.
		block = s.control
	case err != nil:
		return Datagram{}, fmt.Errorf("%w: dropped a %d-byte data-channel datagram that arrived before the handshake; the target is still in an earlier session and pokes again within 3 s (an empty control datagram makes it poke at once)", err, len(b))
	}
	end := len(b) - TagSize
	var iv [TagSize]byte
	copy(iv[:], b[end:])
	cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(b[HeaderSize:end], b[HeaderSize:end])
	var want [TagSize]byte
	s.tag(want[:], b[:end])
	if !hmac.Equal(want[:], iv[:]) {
		return Datagram{}, fmt.Errorf("%w: %d-byte %s-channel datagram; check that the key matches the target's bcdedit /dbgsettings key (otherwise it was corrupted or forged)", ErrAuth, len(b), ch)
	}
	if err != nil { // authentic, but not a channel we know
		return Datagram{}, fmt.Errorf("%w %d in an authentic %d-byte datagram (want 0 data or 1 control); is the target newer than this implementation?", err, uint8(ch), len(b))
	}

	meta := binary.BigEndian.Uint64(b[HeaderSize:])
	body := b[HeaderSize+MetadataSize : end]
	pad := int(meta & metaPadMask)
	switch {
	case meta&metaReserved != 0:
		return Datagram{}, fmt.Errorf("%w: reserved metadata bits %#02x are set", ErrMalformed, meta&metaReserved)
	case pad > len(body):
		return Datagram{}, fmt.Errorf("%w: padding of %d bytes exceeds the %d-byte body", ErrMalformed, pad, len(body))
	}
	n := len(body) - pad
	for _, c := range body[n:] {
		if c != 0 {
			return Datagram{}, fmt.Errorf("%w: padding bytes are not zero", ErrMalformed)
		}
	}
	return Datagram{
		Version:      b[4],
		Channel:      ch,
		Seq:          meta >> 8,
		HostToTarget: meta&metaDirHostToTarget != 0,
		Payload:      body[:n:n],
	}, nil
}

// checkFrame validates what can be checked without a key.
func checkFrame(b []byte) error {
	switch {
	case len(b) < MinDatagram:
		return fmt.Errorf("%w: %d bytes, need at least %d", ErrShort, len(b), MinDatagram)
	case len(b) > MaxDatagram:
		return fmt.Errorf("%w: %d bytes exceeds the %d-byte limit", ErrLength, len(b), MaxDatagram)
	case string(b[:len(Magic)]) != Magic:
		return fmt.Errorf("%w: got % x; is something other than a KDNET target sending to this port?", ErrMagic, b[:len(Magic)])
	case (len(b)-HeaderSize-TagSize)%aes.BlockSize != 0:
		return fmt.Errorf("%w: %d bytes leaves an encrypted part of %d bytes, not a multiple of %d", ErrLength, len(b), len(b)-HeaderSize-TagSize, aes.BlockSize)
	}
	return nil
}
