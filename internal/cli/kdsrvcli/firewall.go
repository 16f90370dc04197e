package kdsrvcli

import (
	"context"
	"log/slog"
	"net"
	"time"

	"kdsrv/internal/firewall"
	"kdsrv/internal/server"
	"kdsrv/internal/spec"
)

// startFirewall opens the firewall (IcfEnable) for each transport of ts
// (in -t order) that asks for it. Like the original, the rule stays after
// kdsrv exits; the message says how to remove it. Problems are warnings:
// the server runs anyway.
func startFirewall(ctx context.Context, e env, s *server.Server, ts []*spec.Transport, logger *slog.Logger) {
	addrs := s.Addrs()
	displays := s.Displays()
	for i, t := range ts {
		if !t.IcfEnable {
			continue
		}
		if t.Reverse() {
			// A reverse server dials out: there is no inbound port to open.
			logger.Info("IcfEnable: nothing to open, kdsrv connects out to the client", "transport", displays[i])
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var res firewall.Result
		var err error
		switch t.Proto {
		case spec.NPipe, spec.SPipe:
			res, err = e.openPipesFirewall(fctx)
		default:
			port := 0
			if ta, ok := addrs[i].(*net.TCPAddr); ok {
				port = ta.Port
			}
			res, err = e.openFirewall(fctx, firewall.Request{Proto: "tcp", Port: port, Comment: "kdsrv " + displays[i]})
		}
		cancel()
		if err != nil {
			logger.Warn("IcfEnable: "+err.Error(), "transport", displays[i])
			continue
		}
		logger.Info("IcfEnable: "+res.String(), "transport", displays[i])
	}
}
