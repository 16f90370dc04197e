package discovery

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/logx"
)

// DNS-SD over multicast DNS.
const (
	// ServiceType is the DNS-SD service type kdsrv announces.
	ServiceType = "_kdsrv._tcp"
	// mdnsDomain is the multicast DNS domain.
	mdnsDomain = "local."
	// mdnsPort is the multicast DNS port.
	mdnsPort = 5353
	// mdnsTTL is the TTL of our records (seconds). Short, so that a server
	// that vanished without a goodbye ages out of caches soon.
	mdnsTTL = 120
	// mdnsLegacyTTL caps TTLs in answers to legacy unicast queries
	// (RFC 6762 §6.7).
	mdnsLegacyTTL = 10
	// servicesMeta is the DNS-SD service enumeration name.
	servicesMeta = "_services._dns-sd._udp.local."
)

// mdnsGroup is the IPv4 multicast DNS group address and port.
var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: mdnsPort}

var serviceName = ServiceType + "." + mdnsDomain

// AnnounceInfo describes the server that Announce advertises.
type AnnounceInfo struct {
	// Instance is the service instance name shown by browsers; default
	// "kdsrv on HOST (pid N)". At most 63 bytes are used.
	Instance string
	// Host is the host name (one label, without ".local"); default the
	// first label of os.Hostname().
	Host string
	// Port is the TCP port of the server's first tcp or ssl transport,
	// or 0 when it has none (the transports are in Lines).
	Port int
	// Lines are the server's transports in display form (see Line); they
	// are published in the TXT record as t0=..., t1=...
	Lines []string
}

// AnnounceOptions tunes Announce. The zero value announces on every
// interface that is up, multicast-capable and has an IPv4 address.
type AnnounceOptions struct {
	// Interfaces names the interfaces to announce on; default all
	// suitable ones.
	Interfaces []string
	// Addr, for tests, replaces multicast: the announcer answers unicast
	// queries on this UDP address (e.g. "127.0.0.1:0") and sends no
	// unsolicited announcements.
	Addr string
	// Logger, if set, receives diagnostics.
	Logger *slog.Logger
}

// BrowseOptions tunes Browse. The zero value queries on every interface
// that is up, multicast-capable and has an IPv4 address.
type BrowseOptions struct {
	// Interfaces names the interfaces to query on; default all suitable
	// ones.
	Interfaces []string
	// Addr, for tests, replaces multicast: the query is sent as a unicast
	// datagram to this UDP address.
	Addr string
}

// BrowseResult is one server found on the local network.
type BrowseResult struct {
	// Instance is the service instance name, e.g. "kdsrv on build7 (pid 812)".
	Instance string
	// Host is the server's multicast DNS host name, e.g. "build7.local.".
	Host string
	// Port is the advertised TCP port (0 when the server has no tcp/ssl
	// transport).
	Port int
	// Addrs are the host's addresses as announced.
	Addrs []netip.Addr
	// Lines are the server's transports in display form.
	Lines []string
}

// hostLabel makes a valid single DNS label from a host name.
func hostLabel(h string) string {
	h, _, _ = strings.Cut(h, ".")
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	if len(b) == 0 {
		return "kdsrv-host"
	}
	return string(b)
}

// announcer holds the records of one announced server and answers queries
// for them.
type announcer struct {
	instance string // full escaped name: "<label>._kdsrv._tcp.local."
	host     string // "<host>.local."
	port     uint16
	text     []string
	log      *slog.Logger
}

func newAnnouncer(info AnnounceInfo) (*announcer, error) {
	if info.Host == "" {
		h, _ := os.Hostname()
		info.Host = h
	}
	host := hostLabel(info.Host)
	if info.Instance == "" {
		info.Instance = fmt.Sprintf("kdsrv on %s (pid %d)", host, os.Getpid())
	}
	inst := info.Instance
	if len(inst) > 63 {
		inst = inst[:63]
	}
	if info.Port < 0 || info.Port > 65535 {
		return nil, fmt.Errorf("discovery: announce: port %d out of range", info.Port)
	}
	text := []string{"txtvers=1"}
	for i, l := range info.Lines {
		if err := checkLine(l); err != nil {
			return nil, fmt.Errorf("discovery: announce: %w", err)
		}
		kv := "t" + strconv.Itoa(i) + "=" + l
		if len(kv) > 255 {
			return nil, fmt.Errorf("discovery: announce: transport line %q too long for a TXT record", l)
		}
		text = append(text, kv)
	}
	return &announcer{
		instance: escapeLabel(inst) + "." + serviceName,
		host:     host + "." + mdnsDomain,
		port:     uint16(info.Port),
		text:     text,
	}, nil
}

// records returns the records answering a question (answers) and the
// related records worth adding (extra).
func (a *announcer) records(q dnsQuestion, addrs []netip.Addr, ttl uint32) (answers, extra []dnsRR) {
	ptr := dnsRR{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN, TTL: ttl, Target: a.instance}
	srv := dnsRR{Name: a.instance, Type: dnsTypeSRV, Class: dnsClassIN, TTL: ttl, Port: a.port, Target: a.host}
	txt := dnsRR{Name: a.instance, Type: dnsTypeTXT, Class: dnsClassIN, TTL: ttl, Text: a.text}
	var hostRRs []dnsRR
	for _, ip := range addrs {
		t := uint16(dnsTypeA)
		if !ip.Is4() {
			t = dnsTypeAAAA
		}
		hostRRs = append(hostRRs, dnsRR{Name: a.host, Type: t, Class: dnsClassIN, TTL: ttl, Addr: ip})
	}
	want := func(t uint16) bool { return q.Type == t || q.Type == dnsTypeANY }
	switch {
	case sameName(q.Name, servicesMeta) && want(dnsTypePTR):
		answers = append(answers, dnsRR{Name: servicesMeta, Type: dnsTypePTR, Class: dnsClassIN, TTL: ttl, Target: serviceName})
	case sameName(q.Name, serviceName) && want(dnsTypePTR):
		answers = append(answers, ptr)
		extra = append(extra, srv, txt)
		extra = append(extra, hostRRs...)
	case sameName(q.Name, a.instance):
		if want(dnsTypeSRV) {
			answers = append(answers, srv)
		}
		if want(dnsTypeTXT) {
			answers = append(answers, txt)
		}
		if len(answers) > 0 {
			extra = append(extra, hostRRs...)
		}
	case sameName(q.Name, a.host):
		for _, rr := range hostRRs {
			if want(rr.Type) {
				answers = append(answers, rr)
			}
		}
	}
	return answers, extra
}

// reply builds the answer to a query datagram, or nil when it asks for
// nothing we hold. legacy selects the legacy-unicast form (RFC 6762 §6.7):
// the query id and questions are echoed and TTLs capped.
func (a *announcer) reply(pkt []byte, addrs []netip.Addr, legacy bool) (out []byte, unicast bool) {
	m, err := decodeDNS(pkt)
	if err != nil || m.Flags&dnsFlagResponse != 0 || len(m.Questions) == 0 {
		return nil, false
	}
	ttl := uint32(mdnsTTL)
	if legacy {
		ttl = mdnsLegacyTTL
	}
	var answers, extra []dnsRR
	for _, q := range m.Questions {
		if q.Class&^dnsClassTop != dnsClassIN && q.Class&^dnsClassTop != dnsTypeANY {
			continue
		}
		an, ex := a.records(q, addrs, ttl)
		answers = append(answers, an...)
		extra = append(extra, ex...)
		if q.Class&dnsClassTop != 0 {
			unicast = true
		}
	}
	if len(answers) == 0 {
		return nil, false
	}
	resp := &dnsMsg{Flags: dnsFlagResponse | dnsFlagAuth, NAnswer: len(answers), Answers: append(answers, extra...)}
	if legacy {
		resp.ID = m.ID
		resp.Questions = m.Questions
		unicast = true
	}
	out, err = resp.encode()
	if err != nil {
		return nil, false
	}
	return out, unicast
}

// unsolicited builds an announcement (ttl > 0) or goodbye (ttl 0) message.
func (a *announcer) unsolicited(addrs []netip.Addr, ttl uint32) []byte {
	an, ex := a.records(dnsQuestion{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN}, addrs, ttl)
	if ttl == 0 {
		ex = nil // a goodbye withdraws the service, not the host's addresses
	}
	m := &dnsMsg{Flags: dnsFlagResponse | dnsFlagAuth, NAnswer: len(an), Answers: append(an, ex...)}
	out, _ := m.encode()
	return out
}

// mdnsInterfaces returns the interfaces to use: the named ones, or every
// interface that is up, multicast-capable and has an IPv4 address.
func mdnsInterfaces(names []string) ([]net.Interface, error) {
	if len(names) > 0 {
		var out []net.Interface
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("discovery: interface %q: %w", n, err)
			}
			out = append(out, *ifi)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: list network interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		if len(ifaceAddrs(&ifi, true)) == 0 {
			continue
		}
		out = append(out, ifi)
	}
	if len(out) == 0 {
		return nil, errors.New("discovery: no network interface is up with multicast and an IPv4 address; multicast DNS cannot be used")
	}
	return out, nil
}

// ifaceAddrs returns an interface's unicast addresses (IPv4 only if v4only).
func ifaceAddrs(ifi *net.Interface, v4only bool) []netip.Addr {
	as, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		pfx, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(pfx.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if v4only && !ip.Is4() {
			continue
		}
		out = append(out, ip)
	}
	return out
}

// Announce advertises a server over DNS-SD/multicast DNS (service type
// "_kdsrv._tcp") until stop is called: it answers queries on UDP 5353 of
// every chosen interface, announces itself twice at start and sends a
// goodbye when stopped. Several kdsrv processes on one host can announce at
// once. Operators who do not want LAN announcements simply don't call it.
func Announce(info AnnounceInfo, opts AnnounceOptions) (stop func(), err error) {
	a, err := newAnnouncer(info)
	if err != nil {
		return nil, err
	}
	a.log = logx.OrDiscard(opts.Logger)
	type sock struct {
		conn  *net.UDPConn
		addrs []netip.Addr
		mcast bool
	}
	var socks []sock
	closeAll := func() {
		for _, s := range socks {
			_ = s.conn.Close()
		}
	}
	if opts.Addr != "" {
		ua, err := net.ResolveUDPAddr("udp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("discovery: announce on %s: %w", opts.Addr, err)
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, fmt.Errorf("discovery: announce on %s: %w", opts.Addr, err)
		}
		ip, _ := netip.AddrFromSlice(ua.IP)
		if !ip.IsValid() || ip.IsUnspecified() {
			ip = netip.MustParseAddr("127.0.0.1")
		}
		socks = append(socks, sock{conn: c, addrs: []netip.Addr{ip.Unmap()}})
	} else {
		ifs, err := mdnsInterfaces(opts.Interfaces)
		if err != nil {
			return nil, err
		}
		for i := range ifs {
			c, err := net.ListenMulticastUDP("udp4", &ifs[i], mdnsGroup)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("discovery: announce: join multicast DNS group on %s: %w (is UDP port 5353 free for sharing, and multicast enabled?)", ifs[i].Name, err)
			}
			if err := restrictToJoinedGroups(c); err != nil {
				a.log.Warn("mDNS: cannot announce on an interface", "interface", ifs[i].Name, logx.Err(err))
			}
			socks = append(socks, sock{conn: c, addrs: ifaceAddrs(&ifs[i], false), mcast: true})
		}
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() { // owned by stop: ends when the socket is closed
			defer wg.Done()
			readDatagrams(s.conn, dnsMaxMsg, done, func(pkt []byte, addr net.Addr) {
				from, ok := addr.(*net.UDPAddr)
				if !ok {
					return
				}
				legacy := from.Port != mdnsPort
				out, unicast := a.reply(pkt, s.addrs, legacy)
				if out == nil {
					return
				}
				to := from
				if s.mcast && !unicast {
					to = mdnsGroup
				}
				if _, err := s.conn.WriteToUDP(out, to); err != nil {
					a.log.Debug("mDNS: reply failed", "to", fmt.Sprint(to), logx.Err(err))
				}
			})
		}()
		if s.mcast {
			wg.Add(1)
			go func() { // two announcements one second apart (RFC 6762 §8.3)
				defer wg.Done()
				for i := 0; i < 2; i++ {
					if _, err := s.conn.WriteToUDP(a.unsolicited(s.addrs, mdnsTTL), mdnsGroup); err != nil {
						a.log.Debug("mDNS: announcement failed", logx.Err(err))
					}
					t := time.NewTimer(time.Second)
					select {
					case <-done:
						t.Stop()
						return
					case <-t.C:
					}
				}
			}()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			for _, s := range socks {
				if s.mcast {
					_, _ = s.conn.WriteToUDP(a.unsolicited(s.addrs, 0), mdnsGroup)
				}
			}
			closeAll()
			wg.Wait()
		})
	}, nil
}

// Browse lists the kdsrv servers that announce themselves on the local
// network, asking on every suitable interface and collecting answers for
// timeout (default 1 s) or until ctx ends. No result is not an error.
func Browse(ctx context.Context, timeout time.Duration) ([]BrowseResult, error) {
	return BrowseWith(ctx, timeout, BrowseOptions{})
}

// BrowseWith is Browse with options.
func BrowseWith(ctx context.Context, timeout time.Duration, opts BrowseOptions) ([]BrowseResult, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var idb [2]byte
	_, _ = rand.Read(idb[:])
	q := &dnsMsg{ID: binary.BigEndian.Uint16(idb[:]), Questions: []dnsQuestion{{Name: serviceName, Type: dnsTypePTR, Class: dnsClassIN}}}
	query, err := q.encode()
	if err != nil {
		return nil, err
	}

	type target struct {
		conn *net.UDPConn
		to   *net.UDPAddr
	}
	var targets []target
	closeAll := func() {
		for _, t := range targets {
			_ = t.conn.Close()
		}
	}
	defer closeAll()
	if opts.Addr != "" {
		ua, err := net.ResolveUDPAddr("udp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("discovery: browse %s: %w", opts.Addr, err)
		}
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return nil, fmt.Errorf("discovery: browse: %w", err)
		}
		targets = append(targets, target{c, ua})
	} else {
		ifs, err := mdnsInterfaces(opts.Interfaces)
		if err != nil {
			return nil, err
		}
		for i := range ifs {
			c, err := listenMulticastSender(ctx, &ifs[i])
			if err != nil {
				return nil, fmt.Errorf("discovery: browse on %s: %w", ifs[i].Name, err)
			}
			targets = append(targets, target{c, mdnsGroup})
		}
	}

	var mu sync.Mutex
	var msgs []*dnsMsg
	var wg sync.WaitGroup
	deadline, _ := ctx.Deadline()
	for _, t := range targets {
		_ = t.conn.SetReadDeadline(deadline)
		wg.Add(1)
		go func() { // ends at the deadline, or when ctx is cancelled
			defer wg.Done()
			buf := make([]byte, dnsMaxMsg)
			for {
				n, _, err := t.conn.ReadFromUDP(buf)
				if err != nil {
					return
				}
				m, err := decodeDNS(buf[:n])
				if err != nil || m.Flags&dnsFlagResponse == 0 {
					continue
				}
				mu.Lock()
				msgs = append(msgs, m)
				mu.Unlock()
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() {
		for _, t := range targets {
			_ = t.conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	// Send the query now and once more a third of the way in, in case the
	// first was lost.
	for i := 0; i < 2; i++ {
		for _, t := range targets {
			_, _ = t.conn.WriteToUDP(query, t.to)
		}
		if i == 0 {
			sleepUntil(ctx, time.Now().Add(timeout/3))
		}
	}
	wg.Wait()
	return collectBrowse(msgs), nil
}

// collectBrowse assembles browse results from the answers received.
func collectBrowse(msgs []*dnsMsg) []BrowseResult {
	instances := map[string]bool{}
	srv := map[string]dnsRR{}
	txt := map[string][]string{}
	addrs := map[string][]netip.Addr{}
	for _, m := range msgs {
		for _, rr := range m.Answers {
			name := strings.ToLower(rr.Name)
			switch rr.Type {
			case dnsTypePTR:
				if sameName(rr.Name, serviceName) {
					t := strings.ToLower(rr.Target)
					instances[t] = rr.TTL > 0
				}
			case dnsTypeSRV:
				srv[name] = rr
			case dnsTypeTXT:
				txt[name] = rr.Text
			case dnsTypeA, dnsTypeAAAA:
				if !slices.Contains(addrs[name], rr.Addr) {
					addrs[name] = append(addrs[name], rr.Addr)
				}
			}
		}
	}
	var out []BrowseResult
	for inst, live := range instances {
		if !live {
			continue // goodbye
		}
		s, ok := srv[inst]
		if !ok {
			continue
		}
		r := BrowseResult{Instance: instanceLabel(s.Name), Host: s.Target, Port: int(s.Port)}
		r.Addrs = append(r.Addrs, addrs[strings.ToLower(s.Target)]...)
		slices.SortFunc(r.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		r.Lines = txtLines(txt[inst])
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b BrowseResult) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}

// instanceLabel returns the unescaped first label of a service instance
// name.
func instanceLabel(name string) string {
	var sb strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '\\' && i+1 < len(name) {
			i++
			sb.WriteByte(name[i])
			continue
		}
		if c == '.' {
			break
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// txtLines extracts the transport lines t0=, t1=, ... in index order,
// ignoring malformed ones.
func txtLines(text []string) []string {
	type kv struct {
		i int
		l string
	}
	var got []kv
	for _, s := range text {
		k, v, ok := strings.Cut(s, "=")
		if !ok || len(k) < 2 || k[0] != 't' {
			continue
		}
		i, err := strconv.Atoi(k[1:])
		if err != nil || i < 0 || i >= MaxTransports || checkLine(v) != nil {
			continue
		}
		got = append(got, kv{i, v})
	}
	slices.SortStableFunc(got, func(a, b kv) int { return a.i - b.i })
	var out []string
	for _, g := range got {
		out = append(out, g.l)
	}
	return out
}
