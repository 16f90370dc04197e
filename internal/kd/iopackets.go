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

func (d *DebugIO) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{{0, &d.API}, {4, &d.ProcessorLevel}, {6, &d.Processor}, {8, &d.Length}, {12, &d.LengthRead}})
}

// DecodeDebugIO parses a DEBUG_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than DebugIOSize. Extra aliases
// payload and is nil when no string follows. The length fields are not
// checked against Extra; use Text.
func DecodeDebugIO(payload []byte) (d DebugIO, err error) {
	d.Extra, err = decodeFixed(payload, "DBGKD_DEBUG_IO", DebugIOSize, d.wire)
	return d, err
}

// Append appends the 16-byte structure followed by Extra to dst.
func (d *DebugIO) Append(dst []byte) []byte { return appendFixed(dst, DebugIOSize, d.Extra, d.wire) }

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

func (f *FileIO) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{{0, &f.API}, {4, &f.Status}, {fileIOUnionOff, f.U[:]}})
}

// DecodeFileIO parses a FILE_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than FileIOSize. Extra aliases
// payload and is nil when no data follows.
func DecodeFileIO(payload []byte) (f FileIO, err error) {
	f.Extra, err = decodeFixed(payload, "DBGKD_FILE_IO", FileIOSize, f.wire)
	return f, err
}

// Append appends the 64-byte structure followed by Extra to dst.
func (f *FileIO) Append(dst []byte) []byte { return appendFixed(dst, FileIOSize, f.Extra, f.wire) }

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

// fileIOUnionOff is where the union (U) starts inside DBGKD_FILE_IO.
const fileIOUnionOff = 8

// get reads the union fields fs.
func (f *FileIO) get(fs []wireField) { getFields(f.U[:], fileIOUnionOff, fs...) }

// put stores the union fields fs.
func (f *FileIO) put(fs []wireField) { putFields(f.U[:], fileIOUnionOff, fs...) }

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

func (a *CreateFileArgs) fields() []wireField {
	return []wireField{{8, &a.DesiredAccess}, {12, &a.FileAttributes}, {16, &a.ShareAccess},
		{20, &a.CreateDisposition}, {24, &a.CreateOptions}, {32, &a.Handle}, {40, &a.Length}}
}

// CreateFile returns the CreateFile union.
func (f *FileIO) CreateFile() (a CreateFileArgs) { f.get(a.fields()); return a }

// SetCreateFile stores a in the CreateFile union.
func (f *FileIO) SetCreateFile(a CreateFileArgs) { f.put(a.fields()) }

// FileRWArgs is the ReadFile/WriteFile union (DBGKD_READ_FILE /
// DBGKD_WRITE_FILE). CloseFile uses only Handle.
type FileRWArgs struct {
	Handle uint64 // @8
	Offset uint64 // @16
	Length uint32 // @24
}

func (a *FileRWArgs) fields() []wireField {
	return []wireField{{8, &a.Handle}, {16, &a.Offset}, {24, &a.Length}}
}

// ReadWrite returns the ReadFile/WriteFile union.
func (f *FileIO) ReadWrite() (a FileRWArgs) { f.get(a.fields()); return a }

// SetReadWrite stores a in the ReadFile/WriteFile union.
func (f *FileIO) SetReadWrite(a FileRWArgs) { f.put(a.fields()) }

// Handle returns the file handle @8 (ReadFile, WriteFile, CloseFile).
func (f *FileIO) Handle() uint64 { return f.ReadWrite().Handle }

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

func (t *TraceIO) wire(b []byte, enc bool) {
	moveFields(b, 0, enc, []wireField{{0, &t.API}, {4, &t.ProcessorLevel}, {6, &t.Processor}, {8, &t.LengthOfData}})
}

// DecodeTraceIO parses a TRACE_IO payload. It fails with an error wrapping
// ErrPayloadTooShort when payload is shorter than TraceIOSize. Extra aliases
// payload and is nil when no data follows.
func DecodeTraceIO(payload []byte) (t TraceIO, err error) {
	t.Extra, err = decodeFixed(payload, "DBGKD_TRACE_IO", TraceIOSize, t.wire)
	return t, err
}

// Append appends the 64-byte structure followed by Extra to dst.
func (t *TraceIO) Append(dst []byte) []byte { return appendFixed(dst, TraceIOSize, t.Extra, t.wire) }

// Data returns the trace bytes, clamped to LengthOfData.
func (t *TraceIO) Data() []byte {
	if int64(t.LengthOfData) < int64(len(t.Extra)) {
		return t.Extra[:t.LengthOfData]
	}
	return t.Extra
}
