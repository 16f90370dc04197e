// Package kdtrace writes decoded traces of KD traffic: one line per KD
// packet and per link event (break-in, RESET, RESEND, corrupt packets,
// retransmissions, bytes on the line outside any packet), on each hop of a
// kdsrv setup:
//
//	debugger <-> bridge   the local debugger and kdclient -listen
//	bridge   <-> server   kdclient and kdsrv (whole KD packets in wire frames)
//	server   <-> target   kdsrv and the target's debug link
//
// A line is text (for people) or a JSON object (for tools). Packets are
// decoded: the STATE_MANIPULATE API name and return status, addresses and
// sizes of memory APIs, the reason of a state change, DbgPrint text.
// Memory contents and payload bytes are never written.
package kdtrace

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"kdsrv/internal/kd"
)

// Hop names a link between two parts of the setup.
type Hop uint8

const (
	// HopDebugger is between a local debugger and kdclient's bridge.
	HopDebugger Hop = iota + 1
	// HopServer is between kdclient and kdsrv.
	HopServer
	// HopTarget is between kdsrv and the target.
	HopTarget
)

// ends returns the hop's host-side and target-side names.
func (h Hop) ends() (host, target string) {
	switch h {
	case HopDebugger:
		return "debugger", "bridge"
	case HopServer:
		return "bridge", "server"
	case HopTarget:
		return "server", "target"
	}
	return "host", "target"
}

func (h Hop) String() string {
	a, b := h.ends()
	return a + "-" + b
}

// Dir is the direction of traffic on a hop.
type Dir uint8

const (
	// ToTarget is from the debugger's side toward the target.
	ToTarget Dir = iota + 1
	// ToHost is from the target's side toward the debugger.
	ToHost
)

// Format selects the trace's line format.
type Format uint8

const (
	// Text is one human-readable line per record.
	Text Format = iota
	// JSON is one JSON object per line.
	JSON
)

// ParseFormat parses a -trace-format value: text or json.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return Text, fmt.Errorf("unknown trace format %q: use text or json", s)
}

// Record is one trace line. Empty fields are left out.
type Record struct {
	Time   time.Time `json:"time"`
	Hop    string    `json:"hop"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Event  string    `json:"event"` // packet, break-in, reset, resend, corrupt, retransmit, console, link, state
	Type   string    `json:"type,omitempty"`
	ID     string    `json:"id,omitempty"`
	Len    *int      `json:"len,omitempty"`
	API    string    `json:"api,omitempty"`
	Status string    `json:"status,omitempty"`
	CPU    *uint16   `json:"cpu,omitempty"`
	Addr   string    `json:"addr,omitempty"`
	Size   *uint32   `json:"size,omitempty"`
	Actual *uint32   `json:"actual,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Text   string    `json:"text,omitempty"`
}

// Tracer writes records to a writer. A nil *Tracer traces nothing, so
// callers need not check. It is safe for concurrent use.
type Tracer struct {
	mu     sync.Mutex
	w      io.Writer
	format Format
	now    func() time.Time
	buf    []byte
	err    error
}

// New returns a tracer writing to w in format f.
func New(w io.Writer, f Format) *Tracer {
	return &Tracer{w: w, format: f, now: time.Now}
}

// SetClock replaces the clock (tests).
func (t *Tracer) SetClock(now func() time.Time) {
	if t != nil {
		t.mu.Lock()
		t.now = now
		t.mu.Unlock()
	}
}

// Err returns the first write error, if any; tracing stops after it.
func (t *Tracer) Err() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *Tracer) endpoints(h Hop, d Dir) (from, to string) {
	host, target := h.ends()
	if d == ToHost {
		return target, host
	}
	return host, target
}

// Packet records a KD packet on hop h.
func (t *Tracer) Packet(h Hop, d Dir, p kd.Packet, withID bool) {
	if t == nil {
		return
	}
	r := Describe(p)
	if withID {
		r.ID = fmt.Sprintf("%#08x", p.ID)
	}
	r.From, r.To = t.endpoints(h, d)
	// Only replies (toward the host) carry a meaningful status.
	if d == ToTarget {
		r.Status = ""
	}
	t.write(h, r)
}

// Event records a kd link event on hop h; hostRole says which end of the
// hop the link plays (a server's target link and the in-process debugger
// of kdclient's commands are host role, the bridge's debugger link is
// target role).
func (t *Tracer) Event(h Hop, hostRole bool, e kd.Event) {
	if t == nil {
		return
	}
	r := Record{Event: e.Kind.String(), Reason: e.Reason}
	if e.Kind != kd.EventBreakIn {
		r.Type = e.Packet.Type.String()
		r.ID = fmt.Sprintf("%#08x", e.Packet.ID)
	}
	r.From, r.To = t.endpoints(h, linkDir(hostRole, e.Dir))
	t.write(h, r)
}

// Note records an event that is not a KD packet (event is a short word
// such as "link", "state", "break-in" or "reset"; text describes it).
func (t *Tracer) Note(h Hop, d Dir, event, text string) {
	if t == nil {
		return
	}
	r := Record{Event: event, Text: text}
	if d != 0 {
		r.From, r.To = t.endpoints(h, d)
	}
	t.write(h, r)
}

// Console records bytes seen on the line outside any packet.
func (t *Tracer) Console(h Hop, d Dir, b []byte) {
	if t == nil || len(b) == 0 {
		return
	}
	n := len(b)
	r := Record{Event: "console", Len: &n, Text: string(b)}
	r.From, r.To = t.endpoints(h, d)
	t.write(h, r)
}

// LinkHooks returns kd.Config callbacks that trace a kd link on hop h.
// hostRole says whether the link plays the hop's host end.
func (t *Tracer) LinkHooks(h Hop, hostRole bool) (trace func(kd.Direction, kd.Packet), event func(kd.Event), noise func([]byte)) {
	if t == nil {
		return nil, nil, nil
	}
	trace = func(d kd.Direction, p kd.Packet) { t.Packet(h, linkDir(hostRole, d), p, true) }
	event = func(e kd.Event) { t.Event(h, hostRole, e) }
	noise = func(b []byte) { t.Console(h, linkDir(hostRole, kd.Received), b) }
	return trace, event, noise
}

// linkDir maps a link's sent/received to the hop's direction.
func linkDir(hostRole bool, d kd.Direction) Dir {
	if (d == kd.Sent) == hostRole {
		return ToTarget
	}
	return ToHost
}

func (t *Tracer) write(h Hop, r Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	r.Time = t.now().UTC()
	r.Hop = h.String()
	t.buf = t.buf[:0]
	if t.format == JSON {
		b, err := json.Marshal(r)
		if err != nil {
			t.err = err
			return
		}
		t.buf = append(append(t.buf, b...), '\n')
	} else {
		t.buf = appendText(t.buf, r)
	}
	if _, err := t.w.Write(t.buf); err != nil {
		t.err = fmt.Errorf("trace: %w", err)
	}
}

// appendText formats r as one line:
//
//	2026-12-06T07:50:01.123456Z server-target target->server packet STATE_MANIPULATE id=0x80800001 len=56 api=ReadVirtualMemory status=0x00000000 addr=0xfffff80000001000 size=16
func appendText(b []byte, r Record) []byte {
	b = r.Time.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, r.Hop...)
	if r.From != "" {
		b = append(b, ' ')
		b = append(b, r.From...)
		b = append(b, "->"...)
		b = append(b, r.To...)
	}
	b = append(b, ' ')
	b = append(b, r.Event...)
	if r.Type != "" {
		b = append(b, ' ')
		b = append(b, r.Type...)
	}
	kv := func(k, v string) {
		if v != "" {
			b = append(b, ' ')
			b = append(b, k...)
			b = append(b, '=')
			b = append(b, v...)
		}
	}
	kv("id", r.ID)
	if r.Len != nil {
		kv("len", strconv.Itoa(*r.Len))
	}
	kv("api", r.API)
	if r.CPU != nil {
		kv("cpu", strconv.Itoa(int(*r.CPU)))
	}
	kv("status", r.Status)
	kv("addr", r.Addr)
	if r.Size != nil {
		kv("size", strconv.FormatUint(uint64(*r.Size), 10))
	}
	if r.Actual != nil {
		kv("actual", strconv.FormatUint(uint64(*r.Actual), 10))
	}
	if r.Reason != "" {
		kv("reason", strconv.Quote(r.Reason))
	}
	if r.Text != "" {
		kv("text", strconv.Quote(r.Text))
	}
	return append(b, '\n')
}

// Describe decodes a KD packet into a record's packet fields. It never
// fails: what cannot be decoded is left out.
func Describe(p kd.Packet) Record {
	r := Record{Event: "packet", Type: p.Type.String()}
	if p.Type.IsControl() {
		switch p.Type {
		case kd.TypeReset:
			r.Event = "reset"
		case kd.TypeResend:
			r.Event = "resend"
		}
		return r
	}
	n := len(p.Payload)
	r.Len = &n
	switch p.Type {
	case kd.TypeStateManipulate:
		if m, err := kd.DecodeManipulate(p.Payload); err == nil {
			describeManipulate(&r, m)
		}
	case kd.TypeStateChange64:
		if sc, err := kd.DecodeStateChange(p.Payload); err == nil {
			cpu := sc.Processor
			r.CPU = &cpu
			r.Reason = sc.String()
		}
	case kd.TypeDebugIO:
		if d, err := kd.DecodeDebugIO(p.Payload); err == nil {
			r.API, r.Text = d.API.String(), string(d.Text())
		}
	case kd.TypeFileIO:
		if f, err := kd.DecodeFileIO(p.Payload); err == nil {
			r.API, r.Status = f.API.String(), fmt.Sprintf("0x%08X", f.Status)
			if f.API == kd.APICreateFile {
				r.Text = f.FileName()
			}
		}
	case kd.TypeTraceIO:
		if tio, err := kd.DecodeTraceIO(p.Payload); err == nil {
			r.API = tio.API.String()
		}
	case readAheadType:
		r.Type = "READAHEAD"
	}
	return r
}

// readAheadType is the read-ahead extension frame between kdclient and
// kdsrv (internal/readahead.PacketType).
const readAheadType = kd.PacketType(0x8000 | uint16(kd.TypeStateManipulate))

func describeManipulate(r *Record, m kd.Manipulate) {
	r.API = m.API.String()
	cpu := m.Processor
	r.CPU = &cpu
	r.Status = fmt.Sprintf("0x%08X", m.ReturnStatus)
	switch m.API {
	case kd.APIReadVirtualMemory, kd.APIWriteVirtualMemory,
		kd.APIReadPhysicalMemory, kd.APIWritePhysicalMemory,
		kd.APIReadControlSpace, kd.APIWriteControlSpace:
		a := m.Memory()
		r.Addr = fmt.Sprintf("%#x", a.Address)
		size, actual := a.Count, a.Actual
		r.Size = &size
		if len(m.Extra) > 0 || actual != 0 {
			r.Actual = &actual
		}
	case kd.APIReadIOSpace, kd.APIWriteIOSpace:
		a := m.IOSpace()
		r.Addr = fmt.Sprintf("%#x", a.Address)
		size := a.DataSize
		r.Size = &size
	case kd.APIQueryMemory:
		r.Addr = fmt.Sprintf("%#x", m.QueryMemory().Address)
	case kd.APIWriteBreakPoint:
		r.Addr = fmt.Sprintf("%#x", m.BreakPoint().Address)
	case kd.APIGetVersion:
		if v := m.Version(); v.MinorVersion != 0 {
			r.Text = fmt.Sprintf("build %d kernbase %#x", v.MinorVersion, v.KernBase)
		}
	}
}

// Open opens a -trace destination: "-" is stderr (not closed by the
// returned closer), anything else a file appended to (created 0600).
func Open(path string, stderr io.Writer) (io.Writer, func() error, error) {
	if path == "" {
		return nil, nil, errors.New("trace: no file given (use - for standard error)")
	}
	if path == "-" {
		return stderr, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("-trace: %w", err)
	}
	return f, f.Close, nil
}
