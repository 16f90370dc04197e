package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdtrace"
)

// linkConfig is the KD link configuration of a KDCOM target link, with
// the trace, metrics and console hooks.
func (t *target) linkConfig() kd.Config {
	cfg := kd.Config{Noise: t.console}
	tr := t.s.cfg.Trace
	m := t.s.metrics
	if tr == nil && m == nil {
		return cfg
	}
	cfg.Trace = func(d kd.Direction, p kd.Packet) {
		tr.Packet(kdtrace.HopTarget, linkDir(d), p, true)
		m.packet(d == kd.Sent, p)
	}
	if tr != nil {
		cfg.Event = func(e kd.Event) { tr.Event(kdtrace.HopTarget, true, e) }
	}
	return cfg
}

func linkDir(d kd.Direction) kdtrace.Dir {
	if d == kd.Sent {
		return kdtrace.ToTarget
	}
	return kdtrace.ToHost
}

// console takes the bytes the target wrote on its line outside KD packets
// (called from the link's goroutine; it must not block).
func (t *target) console(b []byte) {
	t.consoleBytes.Add(uint64(len(b)))
	t.s.cfg.Trace.Console(kdtrace.HopTarget, kdtrace.ToHost, b)
	t.consoleWrite(b)
}

// observeEndpoint wraps a KD endpoint whose link layer has no hooks (KDNET)
// so that its data packets are traced and counted.
func (t *target) observeEndpoint(ep kd.Endpoint) kd.Endpoint {
	if _, ok := ep.(*kd.Link); ok || t.s.cfg.Trace == nil && t.s.metrics == nil {
		return ep // a KDCOM engine reports through its kd.Config hooks
	}
	return &observedEndpoint{Endpoint: ep, t: t}
}

type observedEndpoint struct {
	kd.Endpoint
	t *target
}

// String describes the link (the wrapped endpoint's description).
func (o *observedEndpoint) String() string { return fmt.Sprint(o.Endpoint) }

type linkHooksKey struct{}

// withLinkHooks passes a target's KDCOM hooks (trace, metrics, console) to
// the OpenTarget that opens it: the default one hands them to
// targetlink.Open as its kd.Config.
func withLinkHooks(ctx context.Context, cfg kd.Config) context.Context {
	return context.WithValue(ctx, linkHooksKey{}, cfg)
}

// linkHooks returns the hooks withLinkHooks put in ctx (zero if none).
func linkHooks(ctx context.Context) kd.Config {
	cfg, _ := ctx.Value(linkHooksKey{}).(kd.Config)
	return cfg
}

func (o *observedEndpoint) Send(ctx context.Context, typ kd.PacketType, payload []byte) error {
	p := kd.Packet{Type: typ, Payload: payload}
	o.t.s.cfg.Trace.Packet(kdtrace.HopTarget, kdtrace.ToTarget, p, false)
	o.t.s.metrics.packet(true, p)
	return o.Endpoint.Send(ctx, typ, payload)
}

func (o *observedEndpoint) Recv(ctx context.Context) (kd.Message, error) {
	m, err := o.Endpoint.Recv(ctx)
	if err == nil && m.Kind == kd.MsgPacket {
		o.t.s.cfg.Trace.Packet(kdtrace.HopTarget, kdtrace.ToHost, m.Packet, false)
		o.t.s.metrics.packet(false, m.Packet)
	}
	return m, err
}

func (o *observedEndpoint) SendBreakIn() error {
	o.t.s.cfg.Trace.Note(kdtrace.HopTarget, kdtrace.ToTarget, "break-in", "")
	return o.Endpoint.SendBreakIn()
}

// apiRequest notes a STATE_MANIPULATE request going to the target, for
// the API latency histogram.
func (t *target) apiRequest(typ kd.PacketType, payload []byte) {
	if t.s.metrics == nil || typ != kd.TypeStateManipulate || len(payload) < 4 {
		return
	}
	api := kd.APINumber(binary.LittleEndian.Uint32(payload))
	t.mu.Lock()
	t.apiPending, t.apiSince = api, time.Now()
	t.mu.Unlock()
}

// apiReply observes the latency of the call a STATE_MANIPULATE reply
// answers.
func (t *target) apiReply(p kd.Packet) {
	if t.s.metrics == nil || p.Type != kd.TypeStateManipulate || len(p.Payload) < 4 {
		return
	}
	api := kd.APINumber(binary.LittleEndian.Uint32(p.Payload))
	t.mu.Lock()
	match := t.apiPending == api && !t.apiSince.IsZero()
	since := t.apiSince
	if match {
		t.apiPending, t.apiSince = 0, time.Time{}
	}
	t.mu.Unlock()
	if match {
		t.s.metrics.apiCall(api, time.Since(since))
	}
}
