package kdnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"kdsrv/internal/kd"
)

// TargetConfig configures DialTarget.
type TargetConfig struct {
	Config
	// Host is the debugger host, "HOST:PORT" (bcdedit /dbgsettings net
	// hostip:HOST port:PORT).
	Host string
	// Local is the local UDP address (default ":0", a free port). Windows
	// uses the host's port on its side too; give ":PORT" to do the same,
	// which a host started with target=IP needs (it contacts the target at
	// that port).
	Local string
	// PokeInterval is how often the target pokes the host, before and
	// during a session (default 3s, as Windows). A poke in a session is a
	// keep-alive: a host that restarted answers it with a new session.
	PokeInterval time.Duration
}

// DialTarget opens the target (kernel) end of a KDNET link toward a host.
// It pokes the host at once and then every PokeInterval; a host that
// answers starts a session (the target then sends the pseudo packet
// Windows sends). A host that restarts is found again by the next poke,
// and an empty control datagram from the host makes the target poke at
// once. Recv reports kd.MsgBreakIn, kd.MsgReset (when nothing is pending;
// a pending state change is simply re-sent), kd.MsgResend and data
// packets, like a target-role kd.Link. The caller must Close the endpoint.
func DialTarget(ctx context.Context, cfg TargetConfig) (*Link, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.PokeInterval = orDefault(cfg.PokeInterval, DefaultPokeInterval)
	host, err := resolveHost(ctx, cfg.Host)
	if err != nil {
		return nil, err
	}
	if cfg.Local == "" {
		cfg.Local = ":0"
	}
	pc, err := cfg.ListenUDP(ctx, cfg.Local)
	if err != nil {
		return nil, fmt.Errorf("kdnet: target: open the local udp socket %s: %w; choose another local address or port", cfg.Local, err)
	}
	return openLink(kd.RoleTarget, cfg.Config, pc, func(e *Link) error {
		if _, err := rand.Read(e.clientRandom[:]); err != nil {
			return fmt.Errorf("kdnet: target: no random numbers for the handshake: %w", err)
		}
		e.host = host
		e.pokeEvery = cfg.PokeInterval
		e.hasDuty = true
		e.desc = fmt.Sprintf("kdnet target udp/%d to %s", e.local.Port(), host)
		return nil
	})
}

func resolveHost(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil && ap.Port() != 0 {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("kdnet: target: host %q: %w; write HOST:PORT, e.g. 192.168.0.10:50000", hostport, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("kdnet: target: host %q: bad port %q; give a UDP port 1-65535 (usually 50000-50039)", hostport, p)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("kdnet: target: look up host %q: %v; give the debugger host's IP address", h, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(port)), nil
}

// poke sends a poke. Every poke of an endpoint carries the same client
// random (chosen when it starts, like a boot): a host that answers late
// answers the same handshake, a host that has the session takes a poke as
// a keep-alive, and a restarted host answers it with a new session.
func (e *Link) poke(s *loopState) error {
	var hostPort uint16
	if s.session {
		hostPort = e.host.Port()
	}
	s.clientRandom = e.clientRandom
	s.lastPoke = time.Now()
	e.nst.pokes.Add(1)
	return e.write(s, ChannelControl, e.win.NextSeq(), BuildPoke(s.clientRandom, hostPort))
}

// targetControl handles a host's control-channel datagram: a response to
// a poke, or anything else as a request to poke now.
func (e *Link) targetControl(s *loopState, in inbound) error {
	d := in.d
	if _, err := ParseResponse(d.Payload); err != nil {
		// An empty control datagram: the host wants a poke (rate-limited
		// so that it cannot make us send faster than it does).
		if time.Since(s.lastPoke) >= minPokeGap {
			return e.poke(s)
		}
		return nil
	}
	dataKey, err := AcceptResponse(e.ctlKey, s.clientRandom, d.Payload)
	if err != nil {
		e.nst.stale.Add(1) // answers an earlier poke
		return nil
	}
	if err := e.win.Accept(d); err != nil {
		e.nst.stale.Add(1)
		return nil
	}
	if s.session && dataKey == s.dataKey {
		return nil // the answer to a keep-alive poke: same session
	}
	ns, err := e.ctl.WithDataKey(dataKey)
	if err != nil {
		return fmt.Errorf("kdnet: %s: %w", e.desc, err)
	}
	e.sealer.Store(ns)
	s.dataKey = dataKey
	e.win.Reset()
	_ = e.win.Accept(d)
	s.session, s.used = true, false
	s.haveRecv = false
	n := e.nst.sessions.Add(1)
	e.log().Info("KDNET session with the host", "kdnet_session", n)
	var b [PseudoPacketSize]byte
	if err := e.write(s, ChannelData, e.win.NextSeq(), AppendPseudo(b[:0], s.sendID)); err != nil {
		return err
	}
	if s.pending != nil {
		e.st.Retransmits.Add(1)
		return e.transmit(s)
	}
	return nil
}
