package certstore

import (
	"strings"
	"testing"
)

// FuzzParsePEMFile feeds arbitrary bytes to the store-file decoder: it must
// not panic, every entry it returns has a certificate, and no error text
// quotes the input (which could hold a key).
func FuzzParsePEMFile(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("not pem at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, keys, err := parsePEMFile("/store/f.pem", data)
		for _, e := range entries {
			if e.Certificate == nil || e.Source != "/store/f.pem" {
				t.Fatalf("entry without certificate or source: %+v", e)
			}
		}
		for _, k := range keys {
			if k.signer == nil {
				t.Fatal("nil signer")
			}
		}
		if err != nil && strings.Contains(err.Error(), "-----") {
			t.Fatalf("error quotes PEM input: %v", err)
		}
	})
}

// FuzzNormalizeThumbprint: accepted results are 40 or 64 lower-case hex
// digits and normalising them again changes nothing.
func FuzzNormalizeThumbprint(f *testing.F) {
	f.Add("a9 09 50 2d d8 2a e4 14 33 e6 f8 38 86 b0 0d 42 77 a3 2a 7b")
	f.Add("A9:09:50:2D:D8:2A:E4:14:33:E6:F8:38:86:B0:0D:42:77:A3:2A:7B")
	f.Add("\u200ea909502dd82ae41433e6f83886b00d4277a32a7b")
	f.Add("localhost")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := NormalizeThumbprint(s)
		if !ok {
			if got != "" {
				t.Fatalf("rejected input returned %q", got)
			}
			return
		}
		if len(got) != 40 && len(got) != 64 {
			t.Fatalf("length %d", len(got))
		}
		if strings.Trim(got, "0123456789abcdef") != "" {
			t.Fatalf("not lower-case hex: %q", got)
		}
		if again, ok := NormalizeThumbprint(got); !ok || again != got {
			t.Fatalf("not idempotent: %q -> %q", got, again)
		}
	})
}
