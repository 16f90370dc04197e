package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"kdsrv/internal/kdnet"
	"kdsrv/internal/logx"
)

// ServeKDNET makes m a KDNET target of the debugger host cfg.Host, as
// bcdedit /dbgsettings net hostip:H port:P key:K does on Windows: it pokes
// the host every cfg.PokeInterval (default 3s) until a host answers, then
// serves the kernel over the session. When the host goes away and comes
// back (a restarted kdsrv or debugger), the next poke starts a new
// session; the machine's state carries over. When the machine reboots
// (Reboot), the endpoint is closed and a new one starts, with a new
// client random and new sequence numbers, as a rebooted Windows does.
// ServeKDNET returns nil when ctx ends, and an error only if the endpoint
// cannot be set up.
//
// opts.Ready receives "kdnet:HOST:PORT" (once); opts.Logger (unless
// cfg.Logger is set) receives session events. Other PortOptions fields
// are unused.
func ServeKDNET(ctx context.Context, m *Machine, cfg kdnet.TargetConfig, opts PortOptions) error {
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = m.cfg.AckTimeout
	}
	for first := true; ; first = false {
		boot, end := m.bootDone()
		ep, err := kdnet.DialTarget(ctx, cfg)
		if err != nil {
			return err
		}
		if first {
			opts.ready("kdnet:" + cfg.Host)
		}
		opts.log().Info("poking the host", "kdnet", ep.String(), "boot", boot)
		before := m.Stats()
		start := time.Now()
		bctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-end:
				cancel()
			case <-bctx.Done():
			}
		}()
		err = m.ServeEndpoint(bctx, ep)
		cancel() // also ends the watcher above
		ep.Close()
		opts.log().Info("KDNET endpoint stopped", "kdnet", ep.String(), logx.Round("after", time.Since(start)), "sessions", ep.NetStats().Sessions, "stats", statsDelta(before, m.Stats()))
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-end:
			continue // rebooted: a new endpoint, as a new boot
		default:
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("kdnet target: %w", err)
		}
		return nil
	}
}
