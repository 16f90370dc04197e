package kd

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// codec is one fixed-layout structure's decoder and encoder, for the
// checks its layout test and its fuzz target share with the others'.
type codec[T any] struct {
	size   int // the fixed part: shorter input fails with ErrPayloadTooShort
	decode func([]byte) (T, error)
	encode func(*T, []byte) []byte // Append
	// reencoded returns what encoding the decoded input b must give: b
	// itself, b with padding cleared, b cut to size for decoders that
	// ignore what follows. Nil skips the byte comparison (an encoder that
	// normalises more than it can say, checked by the caller instead).
	reencoded func(b []byte) []byte
}

var (
	debugIOCodec    = codec[DebugIO]{DebugIOSize, DecodeDebugIO, (*DebugIO).Append, sameBytes}
	fileIOCodec     = codec[FileIO]{FileIOSize, DecodeFileIO, (*FileIO).Append, sameBytes}
	traceIOCodec    = codec[TraceIO]{TraceIOSize, DecodeTraceIO, (*TraceIO).Append, nil} // reserved bytes encode as zero
	versionCodec    = codec[Version]{VersionSize, DecodeVersion, (*Version).Append, prefix(VersionSize)}
	contextX64Codec = codec[ContextX64]{ContextX64Size, DecodeContextX64, (*ContextX64).Append, prefix(ContextX64Size)}
	stateCodec      = codec[StateChange]{StateChangeSize, DecodeStateChange, (*StateChange).Append, nil}
	manipulateCodec = codec[Manipulate]{ManipulateSize, DecodeManipulate, (*Manipulate).Append, func(b []byte) []byte {
		want := bytes.Clone(b)
		clear(want[12:16]) // padding is always encoded as zero
		return want
	}}
)

func sameBytes(b []byte) []byte { return b }

func prefix(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }

// fuzz is the body every decoder's fuzz target shares: input shorter than
// the fixed part fails with ErrPayloadTooShort and nothing else fails; what
// decodes encodes back to the input (see reencoded); decoding that encoding
// gives the same value again. It returns the value and whether b decoded,
// for the target's own checks.
func (c codec[T]) fuzz(t *testing.T, b []byte) (T, bool) {
	t.Helper()
	v, err := c.decode(b)
	if err != nil {
		if len(b) >= c.size || !errors.Is(err, ErrPayloadTooShort) {
			t.Fatalf("len %d: unexpected error %v", len(b), err)
		}
		return v, false
	}
	enc := c.encode(&v, nil)
	if c.reencoded != nil {
		if want := c.reencoded(b); !bytes.Equal(enc, want) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, want)
		}
	}
	v2, err := c.decode(enc)
	if err != nil {
		t.Fatalf("decoding the re-encoding: %v", err)
	}
	if diff := cmp.Diff(v, v2); diff != "" {
		t.Fatalf("decode→encode→decode unstable:\n%s", diff)
	}
	return v, true
}

// layout is the check every layout test shares: v encodes with the
// fields fs at their documented offsets, the encoding decodes back to v,
// and one byte less than the fixed part fails with ErrPayloadTooShort.
// It returns the encoding.
func (c codec[T]) layout(t *testing.T, v T, fs []field) []byte {
	t.Helper()
	b := c.encode(&v, nil)
	checkFields(t, b, fs)
	got, err := c.decode(b)
	if err != nil {
		t.Fatalf("decoding the encoding: %v", err)
	}
	if diff := cmp.Diff(v, got); diff != "" {
		t.Errorf("round trip:\n%s", diff)
	}
	if _, err := c.decode(b[:c.size-1]); !errors.Is(err, ErrPayloadTooShort) {
		t.Errorf("%d bytes: err = %v, want ErrPayloadTooShort", c.size-1, err)
	}
	return b
}
