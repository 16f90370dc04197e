package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func header(t Type, flags uint16, length uint32) []byte {
	b := []byte{Magic, byte(t), 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], length)
	return b
}

func TestAppendFrameLayout(t *testing.T) {
	t.Parallel()
	got := AppendFrame([]byte{0xEE}, TypeKD, []byte{0x00, 0x02, 0xAB})
	want := []byte{0xEE, 0x4B, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0xAB}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
	got = AppendFrameFlags(nil, 0x5A, FlagIgnorable, nil)
	if want := header(0x5A, FlagIgnorable, 0); !bytes.Equal(got, want) {
		t.Fatalf("AppendFrameFlags = %x, want %x", got, want)
	}
}

func TestAppendFrameTooLargePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "MaxPayload") {
			t.Fatalf("recover() = %v, want a MaxPayload panic", r)
		}
	}()
	AppendFrame(nil, TypeKD, make([]byte, MaxPayload+1))
}

func TestDecoderSequence(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0x5C}, MaxPayload)
	frames := []Frame{
		{Type: TypeHello, Payload: []byte("abc")},
		{Type: TypeBreakIn, Payload: []byte{}},
		{Type: TypeKD, Payload: big},
		{Type: 0x66, Flags: FlagIgnorable, Payload: []byte{1}},
		{Type: TypeBye, Payload: []byte{}},
	}
	var stream []byte
	for _, f := range frames {
		stream = AppendFrameFlags(stream, f.Type, f.Flags, f.Payload)
	}
	// One byte per Read exercises every partial-read path.
	for _, r := range []io.Reader{bytes.NewReader(stream), &oneByteReader{b: stream}} {
		d := NewDecoder(r)
		for i, want := range frames {
			got, err := d.Next()
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if got.Type != want.Type || got.Flags != want.Flags || !bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("frame %d = %s/%x/%d bytes, want %s/%x/%d bytes", i, got.Type, got.Flags, len(got.Payload), want.Type, want.Flags, len(want.Payload))
			}
		}
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("after the last frame: %v, want io.EOF", err)
		}
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestDecoderErrors(t *testing.T) {
	t.Parallel()
	good := AppendFrame(nil, TypePing, make([]byte, 8))
	tests := []struct {
		name     string
		in       []byte
		wantCode Code  // 0: not a ProtocolError
		wantErr  error // checked with errors.Is when wantCode is 0
	}{
		{"empty stream", nil, 0, io.EOF},
		{"truncated header", good[:5], 0, io.ErrUnexpectedEOF},
		{"truncated payload", good[:len(good)-1], 0, io.ErrUnexpectedEOF},
		{"bad magic", append([]byte{'G'}, good[1:]...), BadFrame, nil},
		{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), BadFrame, nil},
		{"reserved flag bit", header(TypePing, 0x8000, 8), BadFrame, nil},
		{"one over the limit", header(TypeKD, 0, MaxPayload+1), FrameTooLarge, nil},
		{"1 GiB", header(TypeKD, 0, 1<<30), FrameTooLarge, nil},
		{"4 GiB-1", header(TypeKD, 0, 0xFFFFFFFF), FrameTooLarge, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(tt.in))
			_, err := d.Next()
			if tt.wantCode != 0 {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tt.wantCode {
					t.Fatalf("Next() error = %v, want a %s ProtocolError", err, tt.wantCode)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Next() error = %v, want %v", err, tt.wantErr)
			}
			// Errors are sticky.
			if _, err2 := d.Next(); err2 != err {
				t.Fatalf("second Next() = %v, want the same error %v", err2, err)
			}
		})
	}
}

// countingReader serves a header announcing a huge payload followed by an
// endless stream of zero bytes, counting what was read.
type countingReader struct {
	hdr []byte
	n   int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n := copy(p, r.hdr)
	r.hdr = r.hdr[n:]
	for i := n; i < len(p); i++ {
		p[i] = 0
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestDecoderRefusesHugeFrameWithoutAllocating proves that a 1 GiB header is
// refused before any payload buffer is allocated or payload byte consumed.
func TestDecoderRefusesHugeFrameWithoutAllocating(t *testing.T) {
	const runs = 20
	decs := make([]*Decoder, runs)
	readers := make([]*countingReader, runs)
	for i := range decs {
		readers[i] = &countingReader{hdr: header(TypeKD, 0, 1<<30)}
		decs[i] = NewDecoder(readers[i])
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, d := range decs {
		if _, err := d.Next(); err == nil {
			t.Fatal("Next accepted a 1 GiB frame")
		} else if code, _ := ErrorCode(err); code != FrameTooLarge {
			t.Fatalf("Next() = %v, want FrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	// A payload buffer would be at least MaxPayload (64 KiB) per run; the
	// error values themselves are a few hundred bytes.
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 8<<10 {
		t.Fatalf("refusing a huge frame allocated %d bytes per call", perRun)
	}
	for i, r := range readers {
		if r.n > decoderBufSize {
			t.Fatalf("decoder %d consumed %d bytes, more than one read-ahead buffer", i, r.n)
		}
	}
}

func TestDecoderReusesBuffer(t *testing.T) {
	t.Parallel()
	var stream []byte
	for range 3 {
		stream = AppendFrame(stream, TypeKD, make([]byte, 100))
	}
	d := NewDecoder(bytes.NewReader(stream))
	f1, _ := d.Next()
	f2, _ := d.Next()
	if &f1.Payload[0] != &f2.Payload[0] {
		t.Fatal("Decoder did not reuse its payload buffer (documented behaviour changed)")
	}
}

func TestDecoderSteadyStateAllocs(t *testing.T) {
	frame := AppendFrame(nil, TypeKD, make([]byte, 1000))
	r := &repeatReader{b: frame}
	d := NewDecoder(r)
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decoder.Next allocates %.1f times per frame in steady state, want 0", allocs)
	}
}

// repeatReader yields b over and over.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

func TestParseHeader(t *testing.T) {
	t.Parallel()
	h, err := ParseHeader(header(TypeOpen, FlagIgnorable, 42))
	if err != nil || h != (Header{Type: TypeOpen, Flags: FlagIgnorable, Length: 42}) {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	if _, err := ParseHeader([]byte{Magic, 1, 0}); err == nil {
		t.Fatal("ParseHeader accepted 3 bytes")
	}
}
