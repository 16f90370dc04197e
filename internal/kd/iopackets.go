package kd

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// Fixed sizes of the I/O payload structures (docs/kd-protocol.md §6).
const (
	DebugIOSize = 16 // DBGKD_DEBUG_IO
	FileIOSize  = 64 // DBGKD_FILE_IO
	TraceIOSize = 64 // DBGKD_TRACE_IO

	// MaxDebugIOData is the most string bytes a DEBUG_IO packet carries;
	// targets clamp DbgPrint output to it.
	MaxDebugIOData = MaxPayload - DebugIOSize
)

// DebugIO is DBGKD_DEBUG_IO plus its string: a DbgPrint (PrintString,
// target → host) or a DbgPrompt (GetString: prompt target → host, then the
// host's answer as a DEBUG_IO packet with the same ApiNumber).
//
// Layout: ApiNumber u32 @0, ProcessorLevel u16 @4, Processor u16 @6,
// union @8: PrintString {LengthOfString u32 @8}, GetString
// {LengthOfPromptString u32 @8, LengthOfStringRead u32 @12}; string @16.
type DebugIO struct {
	API            APINumber // APIPrintString or APIGetString
	ProcessorLevel uint16
	Processor      uint16
	Length         uint32 // @8: LengthOfString (PrintString) or LengthOfPromptString (GetString)
	LengthRead     uint32 // @12: GetString LengthOfStringRead: maximum accepted (prompt) or actual (answer)
	Extra          []byte // the string after the 16-byte structure
}

// DecodeDebugIO parses a DEBUG_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than DebugIOSize. Extra aliases
// payload and is nil when no string follows. The length fields are not
// checked against Extra; use Text.
func DecodeDebugIO(payload []byte) (DebugIO, error) {
	var d DebugIO
	if len(payload) < DebugIOSize {
		return d, shortPayload("DBGKD_DEBUG_IO", len(payload), DebugIOSize)
	}
	le := binary.LittleEndian
	d.API = APINumber(le.Uint32(payload[0:]))
	d.ProcessorLevel = le.Uint16(payload[4:])
	d.Processor = le.Uint16(payload[6:])
	d.Length = le.Uint32(payload[8:])
	d.LengthRead = le.Uint32(payload[12:])
	if len(payload) > DebugIOSize {
		d.Extra = payload[DebugIOSize:]
	}
	return d, nil
}

// Append appends the 16-byte structure followed by Extra to dst.
func (d *DebugIO) Append(dst []byte) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, uint32(d.API))
	dst = le.AppendUint16(dst, d.ProcessorLevel)
	dst = le.AppendUint16(dst, d.Processor)
	dst = le.AppendUint32(dst, d.Length)
	dst = le.AppendUint32(dst, d.LengthRead)
	return append(dst, d.Extra...)
}

// Text returns the printed string (PrintString), the prompt (GetString from
// the target) or the answer (GetString from the host): Extra clamped to the
// length field that describes it.
func (d *DebugIO) Text() []byte {
	n := d.Length
	if d.API == APIGetString && d.Length == 0 && d.LengthRead != 0 {
		n = d.LengthRead // a host answer carries its length in LengthOfStringRead
	}
	if int64(n) < int64(len(d.Extra)) {
		return d.Extra[:n]
	}
	return d.Extra
}

// String summarises d for logs.
func (d DebugIO) String() string {
	return fmt.Sprintf("%v cpu=%d %q", d.API, d.Processor, d.Text())
}

// NewPrintString builds a target's DbgPrint packet for s (vector V9 is
// NewPrintString([]byte("Hi\n"))). s is clamped to MaxDebugIOData bytes;
// Extra aliases s.
func NewPrintString(s []byte) DebugIO {
	s = s[:min(len(s), MaxDebugIOData)]
	return DebugIO{API: APIPrintString, Length: uint32(len(s)), Extra: s}
}

// NewGetString builds a target's DbgPrompt packet: the prompt and the most
// answer bytes it accepts.
func NewGetString(prompt []byte, maxAnswer uint32) DebugIO {
	prompt = prompt[:min(len(prompt), MaxDebugIOData)]
	return DebugIO{API: APIGetString, Length: uint32(len(prompt)), LengthRead: maxAnswer, Extra: prompt}
}

// Answer builds the host's reply to GetString prompt d: the prompt's header
// with LengthOfPromptString 0, LengthOfStringRead = len(answer) and the
// answer as extra data, truncated to the prompt's LengthRead limit.
func (d *DebugIO) Answer(answer []byte) DebugIO {
	if int64(len(answer)) > int64(d.LengthRead) {
		answer = answer[:d.LengthRead]
	}
	answer = answer[:min(len(answer), MaxDebugIOData)]
	return DebugIO{
		API:            APIGetString,
		ProcessorLevel: d.ProcessorLevel,
		Processor:      d.Processor,
		LengthRead:     uint32(len(answer)),
		Extra:          answer,
	}
}

// FileIO is DBGKD_FILE_IO plus its data: the kernel's requests for files
// served by the debugger (.kdfiles) and the host's replies.
//
// Layout: ApiNumber u32 @0, Status (NTSTATUS) u32 @4, union @8..63 (raw in
// U; see the typed accessors), data @64.
type FileIO struct {
	API    APINumber // APICreateFile .. APICloseFile
	Status uint32    // NTSTATUS, set by the host in replies
	U      [56]byte  // the union at offset 8, raw
	Extra  []byte    // data after the 64-byte structure
}

// DecodeFileIO parses a FILE_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than FileIOSize. Extra aliases
// payload and is nil when no data follows.
func DecodeFileIO(payload []byte) (FileIO, error) {
	var f FileIO
	if len(payload) < FileIOSize {
		return f, shortPayload("DBGKD_FILE_IO", len(payload), FileIOSize)
	}
	le := binary.LittleEndian
	f.API = APINumber(le.Uint32(payload[0:]))
	f.Status = le.Uint32(payload[4:])
	copy(f.U[:], payload[8:FileIOSize])
	if len(payload) > FileIOSize {
		f.Extra = payload[FileIOSize:]
	}
	return f, nil
}

// Append appends the 64-byte structure followed by Extra to dst.
func (f *FileIO) Append(dst []byte) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, uint32(f.API))
	dst = le.AppendUint32(dst, f.Status)
	dst = append(dst, f.U[:]...)
	return append(dst, f.Extra...)
}

// String summarises f for logs.
func (f FileIO) String() string {
	if f.API == APICreateFile {
		return fmt.Sprintf("%v status=0x%08X %q", f.API, f.Status, f.FileName())
	}
	return fmt.Sprintf("%v status=0x%08X extra=%d", f.API, f.Status, len(f.Extra))
}

// NewFileIORefusal builds the host's reply to a FILE_IO request it does not
// serve: ApiNumber api, Status StatusNoSuchFile, everything else zero.
// NewFileIORefusal(APICreateFile) is vector V8.
func NewFileIORefusal(api APINumber) FileIO {
	return FileIO{API: api, Status: StatusNoSuchFile}
}

// Union helpers; off is from the start of the 64-byte structure (≥ 8).
func (f *FileIO) u32(off int) uint32      { return binary.LittleEndian.Uint32(f.U[off-8:]) }
func (f *FileIO) u64(off int) uint64      { return binary.LittleEndian.Uint64(f.U[off-8:]) }
func (f *FileIO) put32(off int, v uint32) { binary.LittleEndian.PutUint32(f.U[off-8:], v) }
func (f *FileIO) put64(off int, v uint64) { binary.LittleEndian.PutUint64(f.U[off-8:], v) }

// CreateFileArgs is the CreateFile union (DBGKD_CREATE_FILE).
type CreateFileArgs struct {
	DesiredAccess     uint32 // @8
	FileAttributes    uint32 // @12
	ShareAccess       uint32 // @16
	CreateDisposition uint32 // @20
	CreateOptions     uint32 // @24 (@28 is padding)
	Handle            uint64 // @32, out
	Length            uint64 // @40, out: file size
}

// CreateFile returns the CreateFile union.
func (f *FileIO) CreateFile() CreateFileArgs {
	return CreateFileArgs{
		DesiredAccess:     f.u32(8),
		FileAttributes:    f.u32(12),
		ShareAccess:       f.u32(16),
		CreateDisposition: f.u32(20),
		CreateOptions:     f.u32(24),
		Handle:            f.u64(32),
		Length:            f.u64(40),
	}
}

// SetCreateFile stores a in the CreateFile union.
func (f *FileIO) SetCreateFile(a CreateFileArgs) {
	f.put32(8, a.DesiredAccess)
	f.put32(12, a.FileAttributes)
	f.put32(16, a.ShareAccess)
	f.put32(20, a.CreateDisposition)
	f.put32(24, a.CreateOptions)
	f.put64(32, a.Handle)
	f.put64(40, a.Length)
}

// FileRWArgs is the ReadFile/WriteFile union (DBGKD_READ_FILE /
// DBGKD_WRITE_FILE). CloseFile uses only Handle.
type FileRWArgs struct {
	Handle uint64 // @8
	Offset uint64 // @16
	Length uint32 // @24
}

// ReadWrite returns the ReadFile/WriteFile union.
func (f *FileIO) ReadWrite() FileRWArgs {
	return FileRWArgs{Handle: f.u64(8), Offset: f.u64(16), Length: f.u32(24)}
}

// SetReadWrite stores a in the ReadFile/WriteFile union.
func (f *FileIO) SetReadWrite(a FileRWArgs) {
	f.put64(8, a.Handle)
	f.put64(16, a.Offset)
	f.put32(24, a.Length)
}

// Handle returns the file handle @8 (ReadFile, WriteFile, CloseFile).
func (f *FileIO) Handle() uint64 { return f.u64(8) }

// FileName decodes the UTF-16LE, NUL-terminated file name a CreateFile
// request carries as extra data. Invalid UTF-16 becomes U+FFFD; an odd
// trailing byte is ignored.
func (f *FileIO) FileName() string {
	n := len(f.Extra) / 2
	u := make([]uint16, 0, n)
	for i := range n {
		c := binary.LittleEndian.Uint16(f.Extra[2*i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// SetFileName sets Extra to name in UTF-16LE plus a NUL (what a target puts
// in a CreateFile request).
func (f *FileIO) SetFileName(name string) {
	u := utf16.Encode([]rune(name))
	b := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	f.Extra = append(b, 0, 0)
}

// TraceIO is DBGKD_TRACE_IO plus its trace bytes (target → host; the host
// only acknowledges it).
//
// Layout: ApiNumber u32 @0, ProcessorLevel u16 @4, Processor u16 @6,
// LengthOfData u32 @8, reserved to 64 (encoded as zero); data @64.
type TraceIO struct {
	API            APINumber // APIPrintTrace
	ProcessorLevel uint16
	Processor      uint16
	LengthOfData   uint32
	Extra          []byte // trace bytes after the 64-byte structure
}

// DecodeTraceIO parses a TRACE_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than TraceIOSize. Extra aliases
// payload and is nil when no data follows.
func DecodeTraceIO(payload []byte) (TraceIO, error) {
	var t TraceIO
	if len(payload) < TraceIOSize {
		return t, shortPayload("DBGKD_TRACE_IO", len(payload), TraceIOSize)
	}
	le := binary.LittleEndian
	t.API = APINumber(le.Uint32(payload[0:]))
	t.ProcessorLevel = le.Uint16(payload[4:])
	t.Processor = le.Uint16(payload[6:])
	t.LengthOfData = le.Uint32(payload[8:])
	if len(payload) > TraceIOSize {
		t.Extra = payload[TraceIOSize:]
	}
	return t, nil
}

// Append appends the 64-byte structure followed by Extra to dst.
func (t *TraceIO) Append(dst []byte) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, uint32(t.API))
	dst = le.AppendUint16(dst, t.ProcessorLevel)
	dst = le.AppendUint16(dst, t.Processor)
	dst = le.AppendUint32(dst, t.LengthOfData)
	dst = append(dst, make([]byte, TraceIOSize-12)...)
	return append(dst, t.Extra...)
}

// Data returns the trace bytes, clamped to LengthOfData.
func (t *TraceIO) Data() []byte {
	if int64(t.LengthOfData) < int64(len(t.Extra)) {
		return t.Extra[:t.LengthOfData]
	}
	return t.Extra
}
