//go:build linux

package transport

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"kdsrv/internal/testkit"

	"kdsrv/internal/commux"
)

// TestCOMOverPTY: three kdsrv channels on one pseudo-terminal, three
// clients on the other end of a relayed cable with one byte in a thousand
// corrupted; every stream arrives intact, and the line shows the
// checksum errors it recovered from.
func TestCOMOverPTY(t *testing.T) {
	comNoLeaks(t)
	cable := testkit.NewPTYCable(t)
	cable.SetNoise(1e-3)
	// Small frames and a short timer: at this error rate most 1024-byte
	// frames are hit, and the default timers make the test crawl.
	ports := &COMPorts{Config: commux.Config{MaxFrame: 128, RetransmitTimeout: 50 * time.Millisecond}}
	r := &comRig{ports: ports, srv: cable.A, cli: cable.B}
	channels := []int{0, 42, 254}
	for _, ch := range channels {
		comEchoServe(t, r.listen(t, ch))
	}
	concurrently(t, len(channels), func(i int) error {
		ch := channels[i]
		dctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := r.dial(dctx, t, ch)
		if err != nil {
			return err
		}
		defer c.Close()
		msg := make([]byte, 64<<10)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		werr := make(chan error, 1)
		go func() { _, err := c.Write(msg); werr <- err }()
		got := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			err = fmt.Errorf("channel %d: %w (line %+v)", ch, err, c.(COMLine).LineStats())
			c.Close()
			<-werr
			return err
		}
		if err := <-werr; err != nil {
			return fmt.Errorf("channel %d: write: %w", ch, err)
		}
		for j := range msg {
			if got[j] != msg[j] {
				return fmt.Errorf("channel %d: byte %d differs", ch, j)
			}
		}
		if i == 0 {
			st := c.(COMLine).LineStats()
			t.Logf("client line: %+v", st)
			if cable.Corrupted() > 0 && st.CRCErrors+st.BadHeaders+st.Resyncs == 0 {
				return fmt.Errorf("the cable corrupted %d bytes but the line saw no errors", cable.Corrupted())
			}
		}
		return nil
	})
	if cable.Corrupted() == 0 {
		t.Error("the relay corrupted nothing; the noise test proved nothing")
	}
}
