package bench

import (
	"context"
	"testing"
	"time"

	"kdsrv/internal/client"
	"kdsrv/internal/netem"
)

// BenchmarkCall measures one small debugger call (GetContext or a 16-byte
// ReadVirtual, alternating) on loopback, directly on the target's pipe and
// through kdsrv with its kdclient bridge.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct {
		name string
		open opener
	}{{"direct", openDirect()}, {"kdsrv", openKdsrv(netem.Profile{}, client.SessionOptions{})}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			st, err := startSim(dir, "b", 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := bc.open(ctx, dir, st)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			if _, err := s.host.Attach(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := smallCall(ctx, s.host, i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
