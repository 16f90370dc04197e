package kdnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"kdsrv/internal/kd"
)

// HostConfig configures ListenHost.
type HostConfig struct {
	Config
	// Addr is the local UDP address to listen on: ":50000" (every
	// interface, as a Windows debugger does) or "IP:PORT". Port 0 picks a
	// free port (tests).
	Addr string
	// Target, if set, is the target's IP address (target=IP): the host
	// sends it an empty control datagram every ContactInterval, to the
	// listening port, until it pokes (a target answers those at once),
	// and ignores datagrams from any other address.
	Target netip.Addr
	// ContactInterval is the contact period with Target (default 500ms).
	ContactInterval time.Duration
}

// ListenHost opens the host (debugger) end of a KDNET link: it listens on
// cfg.Addr and waits for the target whose pokes authenticate with cfg.Key.
// Datagrams that do not authenticate are counted (NetStats.Rejected) and
// never answered. A poke with a new client random starts a new session (a
// rebooted target) unless the current session is live (its target spoke
// within two poke intervals: the poke is then a replay from an earlier
// boot): the host answers it, derives the new data key, sends RESET to
// resynchronise the packet ids and reports kd.MsgSync when the replaced
// session had carried data. The caller must Close the endpoint.
func ListenHost(ctx context.Context, cfg HostConfig) (*Link, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cfg.ContactInterval = orDefault(cfg.ContactInterval, DefaultContactInterval)
	pc, err := cfg.ListenUDP(ctx, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kdnet: listen on udp %s: %w; is another debugger or kdsrv using the port? choose another port=, or stop it", cfg.Addr, err)
	}
	return openLink(kd.RoleHost, cfg.Config, pc, func(e *Link) error {
		e.desc = fmt.Sprintf("kdnet host udp/%d", e.local.Port())
		if cfg.Target.IsValid() {
			e.target = cfg.Target.Unmap()
			e.contactEvery = cfg.ContactInterval
			e.hasDuty = true
			e.desc += ", target " + e.target.String()
		}
		return nil
	})
}

// probeGrace is how long the target of a session has to answer the
// host's request to poke (longer than a target's minimum gap between
// pokes, minPokeGap, plus a round trip).
const probeGrace = 500 * time.Millisecond

// sessionLive decides whether the current session's target is still there
// when a poke with another client random arrives. A target that spoke
// within probeGrace is. Otherwise the host asks it to poke at once (an
// empty control datagram, which a target answers with a keep-alive poke)
// and holds the new poke off; once that request has gone unanswered for
// probeGrace, the session is dead (the target rebooted) and the next poke
// with a new client random is answered. A replayed poke can therefore
// never take the session from a live target, and a real reboot costs the
// new boot one extra poke.
func (e *Link) sessionLive(s *loopState) (bool, error) {
	now := time.Now()
	if now.Sub(s.lastAlive) < probeGrace {
		return true, nil
	}
	if s.probeAt.IsZero() || !s.probeAt.After(s.lastAlive) {
		s.probeAt = now
		return true, e.write(s, ChannelControl, e.win.NextSeq(), nil)
	}
	return now.Sub(s.probeAt) < probeGrace, nil
}

// contactAddr is where a host with a target address sends before the
// handshake: the target at the listening port (KDNET uses the same port
// on both ends).
func (e *Link) contactAddr() netip.AddrPort {
	return netip.AddrPortFrom(e.target, e.local.Port())
}

// hostControl handles a target's control-channel datagram: a poke.
func (e *Link) hostControl(s *loopState, in inbound) error {
	d := in.d
	poke, err := ParsePoke(d.Payload)
	if err != nil {
		e.nst.malformed.Add(1)
		return nil
	}
	if s.session && poke.ClientRandom == s.clientRandom {
		// The target pokes again in the current session (our response
		// was lost, or a keep-alive): answer with the same body, so the
		// data key stays. A replayed poke does not advance and is ignored.
		if err := e.win.Accept(d); err != nil {
			e.nst.stale.Add(1)
			return nil
		}
		s.peer, s.version = in.from, d.Version
		e.nst.pokes.Add(1)
		if s.used {
			s.lastAlive = time.Now()
		}
		return e.write(s, ChannelControl, d.Seq, s.response)
	}
	for i := range s.nSuperseded {
		if s.superseded[i] == poke.ClientRandom {
			e.nst.stale.Add(1) // an old session's poke, replayed
			return nil
		}
	}
	if s.session && s.used {
		if live, err := e.sessionLive(s); live || err != nil {
			// This poke cannot be the session's target rebooting: it is
			// replayed from an earlier boot (or delayed in the network),
			// and answering it would hand the session to nobody.
			e.nst.stale.Add(1)
			if !s.deferred {
				s.deferred = true
				e.log().Info("a poke with another client random while the session's target may still be live: held off (replayed from an earlier boot, or a reboot not yet confirmed)", "peer", in.from.String())
			}
			return nil
		}
	}
	var hostRandom [randomSize]byte
	if _, err := rand.Read(hostRandom[:]); err != nil {
		return fmt.Errorf("kdnet: %s: no random numbers for the handshake: %w", e.desc, err)
	}
	body, dataKey := AnswerPoke(e.ctlKey, poke, hostRandom)
	ns, err := e.ctl.WithDataKey(dataKey)
	if err != nil {
		return fmt.Errorf("kdnet: %s: %w", e.desc, err)
	}
	// Tell the owner about a restart only if the old session was in use
	// (not when our response to an earlier poke was merely lost).
	restarted := s.session && s.used
	hadSession := s.session
	// Only a session that carried data is remembered as replaced: one
	// that never did may have been opened by a replayed poke, and the
	// live target must be able to take its place again.
	if restarted {
		s.superseded[s.supNext] = s.clientRandom
		s.supNext = (s.supNext + 1) % supersededRandoms
		s.nSuperseded = min(s.nSuperseded+1, supersededRandoms)
	}
	s.clientRandom, s.response = poke.ClientRandom, body
	// A new session: the target restarted its numbering.
	e.win.Reset()
	_ = e.win.Accept(d)
	e.sealer.Store(ns)
	s.session, s.used = true, false
	s.probeAt, s.deferred = time.Time{}, false
	s.peer, s.version = in.from, d.Version
	s.haveRecv = false
	s.sendID = HostInitialID
	n := e.nst.sessions.Add(1)
	e.nst.pokes.Add(1)
	e.log().Info("KDNET session with the target", "kdnet_session", n, "peer", in.from.String())
	// The response reuses the poke's seq.
	if err := e.write(s, ChannelControl, d.Seq, body); err != nil {
		return err
	}
	// Resynchronise the packet ids, as WinDbg does; the target answers
	// RESET and sends its pending packet again.
	e.st.ResetsSent.Add(1)
	if err := e.sendControl(s, kd.TypeReset, s.sendID); err != nil {
		return err
	}
	if restarted {
		e.notify(s, kd.Message{Kind: kd.MsgSync})
	}
	if s.pending != nil && (!hadSession || s.pending.Tries == 0) {
		// Queued before there was a session: it goes out now.
		s.pending.Pkt.ID = s.sendID
		if err := e.transmit(s); err != nil {
			return err
		}
	} else if s.pending != nil {
		// A packet for the old session is not carried into the new one:
		// the new boot did not ask for it, and an id it took would make
		// the owner's next packet (the same id again, as its send
		// failed) look like a repeat. Its sender hears why, and sends
		// what the new boot needs.
		op := s.pending
		s.pending = nil
		e.stopRetx(s)
		op.Finish(kd.ErrPeerRestarted)
	}
	if s.wantBreak {
		s.wantBreak = false
		return e.repeatBreakIn(s)
	}
	return nil
}
