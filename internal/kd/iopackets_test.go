package kd

import (
	"bytes"
	"strings"
	"testing"
)

func TestDebugIOOffsets(t *testing.T) {
	d := DebugIO{API: APIGetString, ProcessorLevel: 0x0405, Processor: 0x0607,
		Length: 0x08090A0B, LengthRead: 0x0C0D0E0F, Extra: []byte("prompt> ")}
	b := debugIOCodec.layout(t, d, []field{
		{"ApiNumber", 0, 4, 0x3231},
		{"ProcessorLevel", 4, 2, 0x0405},
		{"Processor", 6, 2, 0x0607},
		{"LengthOfPromptString", 8, 4, 0x08090A0B},
		{"LengthOfStringRead", 12, 4, 0x0C0D0E0F},
	})
	if string(b[16:]) != "prompt> " {
		t.Errorf("string at 16 = %q", b[16:])
	}
	if d, err := DecodeDebugIO(b[:DebugIOSize]); err != nil || d.Extra != nil {
		t.Errorf("no string: %v %q", err, d.Extra)
	}
}

func TestDebugIOConstructors(t *testing.T) {
	long := bytes.Repeat([]byte("x"), MaxPayload)
	tests := []struct {
		name            string
		d               DebugIO
		api             APINumber
		length, lenRead uint32
		text            string
	}{
		{"print", NewPrintString([]byte("Hi\n")), APIPrintString, 3, 0, "Hi\n"},
		{"print clamped", NewPrintString(long), APIPrintString, MaxDebugIOData, 0, string(long[:MaxDebugIOData])},
		{"prompt", NewGetString([]byte("Continue? "), 80), APIGetString, 10, 80, "Continue? "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.d.API != tt.api || tt.d.Length != tt.length || tt.d.LengthRead != tt.lenRead {
				t.Errorf("got %v len %d read %d", tt.d.API, tt.d.Length, tt.d.LengthRead)
			}
			if string(tt.d.Text()) != tt.text {
				t.Errorf("Text() = %.40q", tt.d.Text())
			}
			if n := len(tt.d.Append(nil)); n > MaxPayload {
				t.Errorf("encoded %d bytes > MaxPayload", n)
			}
		})
	}

	prompt := NewGetString([]byte("? "), 4)
	prompt.Processor = 1
	ans := prompt.Answer([]byte("yes please"))
	if ans.API != APIGetString || ans.Processor != 1 || ans.LengthRead != 4 || string(ans.Text()) != "yes " {
		t.Errorf("Answer = %+v text %q", ans, ans.Text())
	}
	// Length fields larger than the data never panic.
	d := DebugIO{API: APIPrintString, Length: 1 << 31, Extra: []byte("ab")}
	if string(d.Text()) != "ab" || !strings.Contains(d.String(), `"ab"`) {
		t.Errorf("Text() = %q", d.Text())
	}
}

func TestFileIOOffsets(t *testing.T) {
	f := FileIO{API: APICreateFile, Status: 0x11223344}
	f.SetCreateFile(CreateFileArgs{DesiredAccess: 0x80000000, FileAttributes: 0x80, ShareAccess: 1,
		CreateDisposition: 2, CreateOptions: 0x20, Handle: 0x0102030405060708, Length: 0x1112131415161718})
	f.SetFileName(`\SystemRoot\system32\drivers\null.sys`)
	b := fileIOCodec.layout(t, f, []field{
		{"ApiNumber", 0, 4, 0x3430},
		{"Status", 4, 4, 0x11223344},
		{"DesiredAccess", 8, 4, 0x80000000},
		{"FileAttributes", 12, 4, 0x80},
		{"ShareAccess", 16, 4, 1},
		{"CreateDisposition", 20, 4, 2},
		{"CreateOptions", 24, 4, 0x20},
		{"pad", 28, 4, 0},
		{"Handle", 32, 8, 0x0102030405060708},
		{"Length", 40, 8, 0x1112131415161718},
		{"name[0] UTF-16LE", 64, 2, '\\'},
		{"name[1] UTF-16LE", 66, 2, 'S'},
	})
	if got, _ := DecodeFileIO(b); got.FileName() != `\SystemRoot\system32\drivers\null.sys` {
		t.Errorf("FileName() = %q", got.FileName())
	}

	rw := FileIO{API: APIReadFile}
	rw.SetReadWrite(FileRWArgs{Handle: 0x2122232425262728, Offset: 0x3132333435363738, Length: 0x41424344})
	b = fileIOCodec.layout(t, rw, []field{
		{"ApiNumber", 0, 4, 0x3431},
		{"Handle", 8, 8, 0x2122232425262728},
		{"Offset", 16, 8, 0x3132333435363738},
		{"Length", 24, 4, 0x41424344},
	})
	got, _ := DecodeFileIO(b)
	if got.ReadWrite() != (FileRWArgs{0x2122232425262728, 0x3132333435363738, 0x41424344}) || got.Handle() != 0x2122232425262728 {
		t.Errorf("ReadWrite() = %+v", got.ReadWrite())
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		extra []byte
		want  string
	}{
		{nil, ""},
		{[]byte{'a', 0, 'b', 0, 0, 0, 'c', 0}, "ab"},
		{[]byte{'a', 0, 'b'}, "a"},              // odd trailing byte ignored
		{[]byte{0x3D, 0xD8, 0x00, 0xDE}, "😀"},   // surrogate pair
		{[]byte{0x00, 0xD8, 'x', 0}, "\uFFFDx"}, // lone surrogate
	}
	for _, tt := range tests {
		f := FileIO{Extra: tt.extra}
		if got := f.FileName(); got != tt.want {
			t.Errorf("FileName(% x) = %q, want %q", tt.extra, got, tt.want)
		}
	}
}

func TestTraceIO(t *testing.T) {
	tr := TraceIO{API: APIPrintTrace, ProcessorLevel: 0x0102, Processor: 0x0304, LengthOfData: 3, Extra: []byte{9, 8, 7, 6}}
	b := traceIOCodec.layout(t, tr, []field{
		{"ApiNumber", 0, 4, 0x3330},
		{"ProcessorLevel", 4, 2, 0x0102},
		{"Processor", 6, 2, 0x0304},
		{"LengthOfData", 8, 4, 3},
		{"reserved", 12, 8, 0},
		{"data", 64, 4, 0x06070809},
	})
	if len(b) != TraceIOSize+4 {
		t.Fatalf("encoded %d bytes", len(b))
	}
	if got, _ := DecodeTraceIO(b); !bytes.Equal(got.Data(), []byte{9, 8, 7}) {
		t.Errorf("Data() = %x", got.Data())
	}
}

func FuzzDecodeDebugIO(f *testing.F) {
	d := NewPrintString([]byte("Hi\n"))
	f.Add(d.Append(nil))
	d = NewGetString([]byte("? "), 16)
	f.Add(d.Append(nil))
	f.Add([]byte{0x30, 0x32})
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, ok := debugIOCodec.fuzz(t, b); ok {
			_ = d.String()
			_ = d.Answer(d.Text())
		}
	})
}

func FuzzDecodeFileIO(f *testing.F) {
	r := NewFileIORefusal(APICreateFile)
	f.Add(r.Append(nil))
	c := FileIO{API: APICreateFile}
	c.SetFileName(`\SystemRoot\system32\ntoskrnl.exe`)
	f.Add(c.Append(nil))
	f.Add(make([]byte, FileIOSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fi, ok := fileIOCodec.fuzz(t, b); ok {
			_ = fi.String()
			_ = fi.CreateFile()
			_ = fi.ReadWrite()
		}
	})
}

func FuzzDecodeTraceIO(f *testing.F) {
	tr := TraceIO{API: APIPrintTrace, LengthOfData: 4, Extra: []byte{1, 2, 3, 4}}
	f.Add(tr.Append(nil))
	f.Add(make([]byte, TraceIOSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tr, ok := traceIOCodec.fuzz(t, b); ok {
			_ = tr.Data()
		}
	})
}
