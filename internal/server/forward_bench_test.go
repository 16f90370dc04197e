package server

import (
	"testing"

	"kdsrv/internal/kd"
	"kdsrv/internal/sim"
)

// BenchmarkServerForward measures one debugger call through kdsrv on
// loopback: a wire client sends a 16-byte ReadVirtual, kdsrv forwards it
// over its KD link to a simulated target on an in-memory pipe and the
// reply comes back. allocs/op counts the client, the server and the
// simulated target together (they share the process).
func BenchmarkServerForward(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    uint32
	}{{"read16", 16}, {"read3944", kd.MaxManipulateData}} {
		b.Run(bc.name, func(b *testing.B) {
			h := newRAHarness(b, sim.Config{})
			rc := h.rawOpen("bench", false)
			rc.verify = false
			req := kd.NewReadVirtual(sim.DataBase, bc.n)
			b.ReportAllocs()
			b.SetBytes(int64(bc.n))
			for b.Loop() {
				rc.call(req)
			}
		})
	}
}
