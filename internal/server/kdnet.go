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

// KDNET target links (trans=@{net:port=N,key=K[,target=IP]}): kdsrv plays
// the debugger host on UDP port N and speaks KDCOM-level packets with the
// client like for any other link.
func init() {
	OpenNet = openNet
}

// KDNETBindHost is the local address KDNET target links listen on; empty
// means every interface, as a Windows debugger host does (the target is
// configured with one of this machine's addresses). Tests set it to
// 127.0.0.1 before starting a server.
var KDNETBindHost = ""

func openNet(ctx context.Context, t *spec.Target, allow *targetlink.AllowList, logger *log.Logger) (Endpoint, fmt.Stringer, error) {
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
		Addr:   net.JoinHostPort(KDNETBindHost, strconv.Itoa(t.NetPort)),
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
