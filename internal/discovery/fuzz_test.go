package discovery

import (
	"bytes"
	"testing"
)

func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(request{Page: 0, ID: 1}))
	f.Add(encodeRequest(request{Page: 255, ID: ^uint64(0)}))
	f.Add([]byte("KDQR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		if len(b) < RequestSize || len(b) > MaxDatagramSize {
			t.Fatalf("accepted a %d-byte request", len(b))
		}
		r2, err := decodeRequest(encodeRequest(r))
		if err != nil || r2 != r {
			t.Fatalf("re-encoding %+v gave %+v, %v", r, r2, err)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(encodeAnswer("HOST", 0, 1, []string{"tcp:Port=53:60", "npipe:Pipe=KernelPipe,Password=*"}, false))
	f.Add(encodeAnswer("h", 3, 2, nil, true))
	f.Add(encodeBusy(0, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResponse(b)
		if err != nil {
			return
		}
		// The encoding is canonical: a decoded datagram re-encodes to itself.
		var again []byte
		if r.Type == typeBusy {
			again = encodeBusy(r.Page, r.ID)
		} else {
			again = encodeAnswer(r.Host, r.Page, r.ID, r.Lines, r.More)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, input %x", r, again, b)
		}
	})
}

func FuzzDecodeDNS(f *testing.F) {
	q, _ := (&dnsMsg{Questions: []dnsQuestion{{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN}}}).encode()
	f.Add(q)
	a, _ := newAnnouncer(AnnounceInfo{Instance: "i", Host: "h", Port: 1, Lines: []string{"tcp:Port=1"}})
	f.Add(a.unsolicited(nil, 120))
	f.Add([]byte{0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 12, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeDNS(b)
		if err != nil {
			return
		}
		// Whatever decodes must be answerable without panicking.
		_, _ = a.reply(b, nil, true)
		_ = collectBrowse([]*dnsMsg{m})
	})
}
