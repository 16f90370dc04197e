package server

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"strconv"

	"kdsrv/internal/kdnet"
	"kdsrv/internal/spec"
	"kdsrv/internal/targetlink"
)

// openNet opens a KDNET target link (trans=@{net:port=N,key=K[,target=IP]})
// in the host role: kdsrv plays the debugger host on UDP port N of
// bindHost (empty: every interface) and speaks KDCOM-level packets with the
// client like for any other link. Events of the link (sessions, datagrams
// failing authentication) go to logger.
func openNet(ctx context.Context, t *spec.Target, allow *targetlink.AllowList, bindHost string, logger *log.Logger) (Endpoint, fmt.Stringer, error) {
	if allow == nil {
		return nil, nil, fmt.Errorf("target %s: no allow-list; start kdsrv with -allow net:%d", t, t.NetPort)
	}
	if err := allow.Check(t); err != nil {
		return nil, nil, err
	}
	key, err := kdnet.ParseKey(t.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("target %s: %w", t, err)
	}
	cfg := kdnet.HostConfig{
		Config: kdnet.Config{Key: key, Logf: logger.Printf},
		Addr:   net.JoinHostPort(bindHost, strconv.Itoa(t.NetPort)),
	}
	if t.TargetIP != "" {
		ip, err := netip.ParseAddr(t.TargetIP)
		if err != nil {
			return nil, nil, fmt.Errorf("target %s: target=%s is not an IP address; give the target machine's IP", t, t.TargetIP)
		}
		cfg.Target = ip
	}
	ep, err := kdnet.ListenHost(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("target %s: %w", t, err)
	}
	return ep, ep, nil
}
