package targetlink

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/spec"
)

// openNet opens a KDNET target (trans=@{net:port=N,key=K[,target=IP]}) in
// the host role: this machine plays the debugger host on UDP port N of
// opts.KDNETBindHost.
func openNet(ctx context.Context, t *spec.Target, allow *AllowList, opts Options) (kd.Endpoint, error) {
	if err := t.Complete(); err != nil {
		return nil, fmt.Errorf("targetlink: %w", err)
	}
	if allow == nil {
		allow = DefaultAllow()
	}
	if _, err := allow.admit(ctx, t, false); err != nil {
		return nil, err
	}
	key, err := kdnet.ParseKey(t.Key)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t, err)
	}
	cfg := kdnet.HostConfig{
		Config: kdnet.Config{Key: key, Logger: opts.Logger},
		Addr:   net.JoinHostPort(opts.KDNETBindHost, strconv.Itoa(t.NetPort)),
	}
	if t.TargetIP != "" {
		ip, err := netip.ParseAddr(t.TargetIP)
		if err != nil {
			return nil, fmt.Errorf("target %s: target=%s is not an IP address; give the target machine's IP", t, t.TargetIP)
		}
		cfg.Target = ip
	}
	ep, err := kdnet.ListenHost(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t, err)
	}
	return ep, nil
}
