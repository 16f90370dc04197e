package kdsrvcli

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"

	"kdsrv/internal/discovery"
	"kdsrv/internal/server"
	"kdsrv/internal/spec"
)

// Discovery: make this server visible to "kdclient -QR \\Host" and to LAN
// browsers. A server is listed when it runs elevated and per transport only
// when that transport is neither hidden nor a reverse (clicon) one (see
// discovery.Discoverable). A discoverable server
//
//   - records its transports in the machine-wide registry (-registry, by
//     default discovery.DefaultDir()) and removes them when it exits;
//   - runs a -QR responder on UDP -qr-port (default 50100); when another
//     server holds the port this one stands by and takes over when that
//     one exits;
//   - announces itself by multicast DNS unless -no-mdns is given.
//
// Problems with any of these are warnings: the server runs anyway.

// discoveryConfig is what the discovery part takes from the command line.
type discoveryConfig struct {
	qrPort   int
	registry string
	noMDNS   bool
	bindHost string
	// elevated: whether this process may be listed at all.
	elevated bool
}

// startDiscovery makes the server s, listening on the transports ts (in
// -t order), discoverable. The returned stop (nil when there is nothing to
// undo) ends it.
func startDiscovery(cfg discoveryConfig, s *server.Server, ts []*spec.Transport, logger *slog.Logger) (func(), error) {
	if cfg.qrPort < 0 || cfg.qrPort > 65535 {
		return nil, fmt.Errorf("-%s %d is not a UDP port: give 1-65535, or 0 for no -QR responder", flagQRPort, cfg.qrPort)
	}
	lines, notices := discoveryLines(ts, s.Displays(), s.Addrs(), cfg.elevated)
	for _, n := range notices {
		logger.Info(n)
	}
	if len(lines) == 0 {
		return nil, nil
	}
	warn := func(format string, a ...any) {
		logger.Warn(fmt.Sprintf(format, a...))
	}
	reg := &discovery.Registry{Dir: cfg.registry}
	unregister, err := reg.Register(discovery.Server{Transports: lines})
	if err != nil {
		warn("not discoverable by -QR: %v", err)
		return nil, nil
	}
	logger.Info("discoverable by -QR", "as", strings.Join(lines, ", "))
	var responder *discovery.Responder
	if cfg.qrPort != 0 {
		addr := net.JoinHostPort(cfg.bindHost, strconv.Itoa(cfg.qrPort))
		responder, err = discovery.StartResponder(reg, addr, discovery.ResponderOptions{Logger: logger})
		if err != nil {
			warn("-QR queries will not be answered by this process: %v (another kdsrv on this host may still answer them)", err)
		} else if !responder.Active() {
			logger.Info("-QR: the UDP port is held by another kdsrv; standing by to take it over", "udp", addr)
		}
	}
	var stopAnnounce func()
	if !cfg.noMDNS {
		ifaces, skip := announceInterfaces(cfg.bindHost)
		if skip != "" {
			logger.Info("not announced by multicast DNS", "reason", skip)
		} else {
			stopAnnounce, err = discovery.Announce(discovery.AnnounceInfo{Port: firstTCPPort(ts, s.Addrs()), Lines: lines},
				discovery.AnnounceOptions{Interfaces: ifaces, Logger: logger})
			if err != nil {
				warn("not announced on the local network: %v (start kdsrv with -%s to skip announcing)", err, flagNoMDNS)
				stopAnnounce = nil
			}
		}
	}
	return func() {
		if err := unregister(); err != nil {
			warn("%v", err)
		}
		if stopAnnounce != nil {
			stopAnnounce()
		}
		if responder != nil {
			_ = responder.Close()
		}
	}, nil
}

// discoveryLines returns the display line of every discoverable transport
// (transports, displays and addrs are in -t order), and the start-up
// notices for the operator.
func discoveryLines(ts []*spec.Transport, displays []string, addrs []net.Addr, isElevated bool) (lines, notices []string) {
	notElevated := ""
	for i, t := range ts {
		ok, reason := discovery.Discoverable(isElevated, t.Hidden, t.Reverse())
		if !ok {
			// Hidden and clicon transports are unlisted on purpose; say
			// why only when elevation is what is missing.
			if !t.Hidden && !t.Reverse() {
				notElevated = reason
			}
			continue
		}
		var display string
		var addr net.Addr
		if i < len(displays) {
			display = displays[i]
		}
		if i < len(addrs) {
			addr = addrs[i]
		}
		lines = append(lines, discoveryLine(t, display, addr))
	}
	if notElevated != "" {
		notices = append(notices, notElevated)
	}
	return lines, notices
}

// shownKeys are the fields of a listener's display form that -QR shows, in
// the order they are shown. Everything else (certificates, flags such as
// hidden, and above all the password) is left out.
var shownKeys = []string{"proto", "port", "pipe", "baud", "channel", "ipversion"}

// discoveryLine is the -QR display line of one transport: the listener's
// display form (the transport as a client types it back, with the port or
// pipe actually in use) cut down to shownKeys and capitalised the way the
// original shows it, e.g. "tcp:Port=53:60" or
// "npipe:Pipe=KernelPipe,Password=*".
func discoveryLine(t *spec.Transport, display string, addr net.Addr) string {
	proto, rest, ok := strings.Cut(display, ":")
	if !ok || proto == "" {
		proto, rest = string(t.Proto), ""
	}
	values := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(f, "=")
		if ok && k != "" {
			values[strings.ToLower(strings.TrimSpace(k))] = v
		}
	}
	// The port actually bound, then the end of the range (tcp, ssl).
	if ta, ok := addr.(*net.TCPAddr); ok && (t.Proto == spec.TCP || t.Proto == spec.SSL) && ta.Port > 0 {
		end := 0
		if t.Port.IsRange() {
			end = int(t.Port.Hi)
		}
		values["port"] = discovery.PortField(ta.Port, end)
	}
	if _, ok := values["pipe"]; !ok && t.Pipe != "" && (t.Proto == spec.NPipe || t.Proto == spec.SPipe) {
		values["pipe"] = t.Pipe
	}
	var fields []discovery.KV
	for _, k := range shownKeys {
		if v, ok := values[k]; ok && v != "" {
			fields = append(fields, discovery.KV{Key: k, Value: v})
		}
	}
	return discovery.Line(proto, fields, t.Password != "")
}

// firstTCPPort is the port of the first tcp or ssl listener, which the
// multicast DNS SRV record carries (0 when there is none).
func firstTCPPort(ts []*spec.Transport, addrs []net.Addr) int {
	for i, t := range ts {
		if t.Proto != spec.TCP && t.Proto != spec.SSL || t.Hidden || t.Reverse() || i >= len(addrs) {
			continue
		}
		if ta, ok := addrs[i].(*net.TCPAddr); ok {
			return ta.Port
		}
	}
	return 0
}

// announceInterfaces picks where to announce for a server bound with -bind
// to bindHost: everywhere when unbound, only the interface holding the
// address otherwise, and nowhere (skip says why) when the server listens
// on loopback only, since nobody on the network could reach it.
func announceInterfaces(bindHost string) (names []string, skip string) {
	if bindHost == "" {
		return nil, ""
	}
	ips, err := net.LookupIP(bindHost)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Sprintf("cannot resolve -bind %s: %v", bindHost, err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Sprintf("list network interfaces: %v", err)
	}
	for _, ip := range ips {
		if ip.IsLoopback() {
			return nil, "kdsrv listens on loopback only (-bind " + bindHost + ")"
		}
		if ip.IsUnspecified() {
			return nil, ""
		}
		for _, ifi := range ifs {
			addrs, _ := ifi.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) && !slices.Contains(names, ifi.Name) {
					names = append(names, ifi.Name)
				}
			}
		}
	}
	if len(names) == 0 {
		return nil, "no network interface holds the -bind address " + bindHost
	}
	return names, ""
}
