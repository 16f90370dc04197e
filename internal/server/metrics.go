package server

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kdsrv/internal/kd"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (never the process-wide default registry, so that several servers in one
// process, as in tests, do not collide). A nil *metrics records nothing.
type metrics struct {
	reg *prometheus.Registry

	connections  *prometheus.CounterVec // transport, result
	authFailures *prometheus.CounterVec // transport
	sessions     prometheus.Gauge
	packets      *prometheus.CounterVec // direction, type
	bytes        *prometheus.CounterVec // direction, type
	apiLatency   *prometheus.HistogramVec

	// Bound children for the packet path, so that counting a packet does
	// not look labels up.
	mu       sync.Mutex
	pktBound map[pktKey]pktCounters
}

type pktKey struct {
	toTarget bool
	typ      kd.PacketType
}

type pktCounters struct{ packets, bytes prometheus.Counter }

// Connection results for kdsrv_client_connections_total.
const (
	connAccepted        = "accepted"          // handshake done, client authenticated
	connAuthFailed      = "auth_failed"       // wrong or missing password
	connHandshakeFailed = "handshake_failed"  // anything else before the session
	connRefusedBusy     = "refused_busy"      // turned away before the handshake: a cap on unauthenticated connections
	connRefusedThrottle = "refused_throttled" // turned away before the handshake: too many failed passwords from its source
)

// connResults are every value of the result label.
var connResults = [...]string{connAccepted, connAuthFailed, connHandshakeFailed, connRefusedBusy, connRefusedThrottle}

// counterVec is a counter with the given labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: counterVec("kdsrv_client_connections_total",
			"Client connections by transport and result (accepted, auth_failed, handshake_failed, refused_busy, refused_throttled).",
			"transport", "result"),
		authFailures: counterVec("kdsrv_auth_failures_total",
			"Client handshakes that failed authentication (wrong or missing password), by transport.",
			"transport"),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kdsrv_sessions_active",
			Help: "Client sessions that have a target open (debug sessions and console watchers).",
		}),
		packets: counterVec("kdsrv_kd_packets_total",
			"KD packets on the target links, by direction (to_target, from_target) and packet type.",
			"direction", "type"),
		bytes: counterVec("kdsrv_kd_bytes_total",
			"Bytes of KD packets on the target links (header, payload and trailer), by direction and packet type.",
			"direction", "type"),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kdsrv_api_call_duration_seconds",
			Help:    "Time from a STATE_MANIPULATE request sent to the target until its reply, by API.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"api"}),
		pktBound: make(map[pktKey]pktCounters),
	}
	m.reg.MustRegister(m.connections, m.authFailures, m.sessions, m.packets, m.bytes, m.apiLatency,
		&targetCollector{s: s})
	// Every transport's series exist from the start (at 0), so that an
	// alert on them works before the first failure.
	for _, t := range s.cfg.Transports {
		p := string(t.Proto)
		m.authFailures.WithLabelValues(p)
		for _, r := range connResults {
			m.connections.WithLabelValues(p, r)
		}
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) connection(transport, result string) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(transport, result).Inc()
	if result == connAuthFailed {
		m.authFailures.WithLabelValues(transport).Inc()
	}
}

func (m *metrics) sessionOpened() {
	if m != nil {
		m.sessions.Inc()
	}
}

func (m *metrics) sessionClosed() {
	if m != nil {
		m.sessions.Dec()
	}
}

// packet counts one packet on a target link.
func (m *metrics) packet(toTarget bool, p kd.Packet) {
	if m == nil {
		return
	}
	k := pktKey{toTarget, p.Type}
	m.mu.Lock()
	c, ok := m.pktBound[k]
	if !ok {
		dir := "from_target"
		if toTarget {
			dir = "to_target"
		}
		typ := strings.ToLower(p.Type.String())
		c = pktCounters{m.packets.WithLabelValues(dir, typ), m.bytes.WithLabelValues(dir, typ)}
		m.pktBound[k] = c
	}
	m.mu.Unlock()
	n := kd.HeaderSize
	if !p.Type.IsControl() {
		n += len(p.Payload) + 1
	}
	c.packets.Inc()
	c.bytes.Add(float64(n))
}

func (m *metrics) apiCall(api kd.APINumber, d time.Duration) {
	if m != nil {
		m.apiLatency.WithLabelValues(api.String()).Observe(d.Seconds())
	}
}

// targetCollector reports the open target links when scraped: how many
// are in each state, and each link's link-layer and read-ahead counters.
type targetCollector struct{ s *Server }

var (
	descTargets = prometheus.NewDesc("kdsrv_target_links",
		"Open target links by state (halted, running, not_responding).", []string{"state"}, nil)
	descRetransmits = prometheus.NewDesc("kdsrv_kd_retransmissions_total",
		"KD data packets the server sent to a target again (no acknowledgement in time, RESEND, RESET), per target link.", []string{"target"}, nil)
	descResends = prometheus.NewDesc("kdsrv_kd_resends_total",
		"RESEND requests exchanged with a target (direction sent: the server asked for a packet again after a corrupt one; received: the target asked), per target link.", []string{"target", "direction"}, nil)
	descResyncs = prometheus.NewDesc("kdsrv_kd_resyncs_total",
		"Times a target restarted its packet id streams (RESET received, or a packet with the sync bit: reset or reboot), per target link.", []string{"target"}, nil)
	descConsole = prometheus.NewDesc("kdsrv_console_bytes_total",
		"Bytes seen on a target line outside KD packets (the target's console), per target link.", []string{"target"}, nil)
	descReadAhead = prometheus.NewDesc("kdsrv_readahead_hits_total",
		"Memory reads answered from read-ahead data instead of the target (where: server = kdsrv's cache, client = data kdsrv pushed to kdclient), per target link.", []string{"target", "where"}, nil)
)

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTargets, descRetransmits, descResends, descResyncs, descConsole, descReadAhead} {
		ch <- d
	}
}

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{"halted": 0, "running": 0, "not_responding": 0}
	for _, t := range c.s.openTargets() {
		name := t.spec.String()
		t.mu.Lock()
		state := "running"
		switch {
		case t.slow:
			state = "not_responding"
		case t.halted:
			state = "halted"
		}
		t.mu.Unlock()
		counts[state]++
		st := t.kdl.Stats()
		ch <- prometheus.MustNewConstMetric(descRetransmits, prometheus.CounterValue, float64(st.Retransmits), name)
		ch <- prometheus.MustNewConstMetric(descResends, prometheus.CounterValue, float64(st.ResendsSent), name, "sent")
		ch <- prometheus.MustNewConstMetric(descResends, prometheus.CounterValue, float64(st.ResendsReceived), name, "received")
		ch <- prometheus.MustNewConstMetric(descResyncs, prometheus.CounterValue, float64(st.ResetsReceived+t.syncs.Load()), name)
		ch <- prometheus.MustNewConstMetric(descConsole, prometheus.CounterValue, float64(t.consoleBytes.Load()), name)
		ra := t.readAheadStats()
		ch <- prometheus.MustNewConstMetric(descReadAhead, prometheus.CounterValue, float64(ra.Hits), name, "server")
		ch <- prometheus.MustNewConstMetric(descReadAhead, prometheus.CounterValue, float64(ra.Hinted), name, "client")
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, n, state)
	}
}

// openTargets returns the target links that are open (not opening, not
// failed, not closed).
func (s *Server) openTargets() []*target {
	s.mu.Lock()
	ts := make([]*target, 0, len(s.targets))
	for _, t := range s.targets {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := ts[:0]
	for _, t := range ts {
		select {
		case <-t.opening:
			if t.err == nil && t.kdl != nil {
				out = append(out, t)
			}
		default:
		}
	}
	return out
}

// MetricsHandler serves the server's metrics in the Prometheus text
// format, or is nil when Config.Metrics is off.
func (s *Server) MetricsHandler() http.Handler {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.handler()
}
