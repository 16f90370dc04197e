package kd

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func withAPI(api APINumber, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(api))
	return b
}

func TestCheckHostPacket(t *testing.T) {
	gv := NewGetVersion()
	prompt := NewGetString([]byte("? "), 10)
	answer := prompt.Answer([]byte("y"))
	refusal := NewFileIORefusal(APICreateFile)
	print := NewPrintString([]byte("x"))
	ok := []struct {
		name    string
		typ     PacketType
		payload []byte
	}{
		{"manipulate", TypeStateManipulate, gv.Append(nil)},
		{"manipulate at the size limit", TypeStateManipulate, make([]byte, MaxPayload)},
		{"prompt answer", TypeDebugIO, answer.Append(nil)},
		{"file refusal", TypeFileIO, refusal.Append(nil)},
		{"file read answer", TypeFileIO, withAPI(APIReadFile, FileIOSize+100)},
		{"hardware breakpoint answer", TypeControlRequest, withAPI(APIRequestHardwareBp, ControlRequestSize)},
		{"hardware breakpoint release", TypeControlRequest, withAPI(APIReleaseHardwareBp, ControlRequestSize)},
	}
	for _, c := range ok {
		if err := CheckHostPacket(c.typ, c.payload); err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
		}
	}
	bad := []struct {
		name    string
		typ     PacketType
		payload []byte
		want    string
	}{
		{"UNUSED", TypeUnused, make([]byte, 12), "UNUSED"},
		{"ACK", TypeAcknowledge, nil, "control packet"},
		{"RESET", TypeReset, nil, "control packet"},
		{"RESEND", TypeResend, nil, "control packet"},
		{"state change", TypeStateChange64, make([]byte, 240), "from the target"},
		{"legacy state change", TypeStateChange32, make([]byte, 240), "from the target"},
		{"trace", TypeTraceIO, make([]byte, 64), "from the target"},
		{"poll", TypePollBreakIn, nil, "never sent"},
		{"type 12", TypeMax, make([]byte, 56), "unknown type"},
		{"type 0x8002", 0x8002, make([]byte, 56), "unknown type"},
		{"short manipulate", TypeStateManipulate, make([]byte, ManipulateSize-1), "shorter"},
		{"empty manipulate", TypeStateManipulate, nil, "shorter"},
		{"oversized manipulate", TypeStateManipulate, make([]byte, MaxPayload+1), "longer"},
		{"print from the host", TypeDebugIO, print.Append(nil), "GetString"},
		{"short debug io", TypeDebugIO, make([]byte, DebugIOSize-1), "shorter"},
		{"short file io", TypeFileIO, withAPI(APICreateFile, FileIOSize-1), "shorter"},
		{"file io with another API", TypeFileIO, withAPI(APIGetVersion, FileIOSize), "not a FILE_IO"},
		{"short control request", TypeControlRequest, withAPI(APIRequestHardwareBp, 8), "shorter"},
		{"control request with another API", TypeControlRequest, withAPI(APIGetVersion, 12), "not a hardware"},
	}
	for _, c := range bad {
		err := CheckHostPacket(c.typ, c.payload)
		var he *HostPacketError
		if !errors.As(err, &he) || he.Type != c.typ || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a refusal saying %q", c.name, err, c.want)
		}
	}
}

func FuzzCheckHostPacket(f *testing.F) {
	gv := NewGetVersion()
	f.Add(uint16(TypeStateManipulate), gv.Append(nil))
	f.Add(uint16(TypeUnused), []byte{})
	f.Add(uint16(TypeDebugIO), withAPI(APIGetString, DebugIOSize))
	f.Add(uint16(TypeFileIO), withAPI(APICloseFile, FileIOSize))
	f.Add(uint16(TypeControlRequest), withAPI(APIRequestHardwareBp, ControlRequestSize))
	f.Fuzz(func(t *testing.T, pt uint16, payload []byte) {
		err := CheckHostPacket(PacketType(pt), payload)
		if err == nil {
			// Whatever passes is a type a host sends, within the limits,
			// and can be framed.
			typ := PacketType(pt)
			if typ.IsControl() || typ >= TypeMax || len(payload) > MaxPayload || len(payload) < 4 {
				t.Fatalf("accepted type %d with %d bytes", pt, len(payload))
			}
			_ = AppendPacket(nil, Packet{Type: typ, ID: InitialPacketID, Payload: payload})
		} else if err.Error() == "" {
			t.Fatal("empty refusal")
		}
	})
}
