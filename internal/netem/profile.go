// Package netem emulates a wide-area link on one machine. It delays,
// rate-limits and jitters a byte stream the way a TCP connection over a WAN
// would look to the application, so that kdsrv can be compared with a plain
// byte relay and with a direct link "over a WAN" in tests and benchmarks.
//
// Three ways to put the emulator on a hop:
//
//   - [Pipe] returns two connected in-memory conns (no goroutines at all);
//   - [Wrap] puts the emulator in front of an existing net.Conn;
//   - [NewProxy] listens on a loopback address and forwards every accepted
//     connection to a target through the emulator.
//
// [Relay] is the "dumb relay" baseline (a socat-like byte copier).
//
// # Model
//
// Each Write is one segment (writes larger than [MaxSegment] are split). A
// segment of n bytes written at time t in a direction is readable at
//
//	txEnd   = max(t, txEnd of the previous segment) + n/Rate   (serialisation)
//	arrival = txEnd + Delay + uniform[-Jitter, +Jitter]        (propagation, ≥ 0)
//	        + RTO if the segment is lost                       (retransmission)
//	arrival = max(arrival, arrival of the previous segment)    (in-order delivery)
//
// where RTO = max([MinRTO], 2·RTT) and RTT = 2·Delay. A lost segment is never
// dropped or corrupted: as in TCP, it and everything behind it is held back
// until it has been retransmitted. Bytes of a stream are never reordered.
//
// At most Window bytes per direction are in flight (written and not yet read
// by the peer); Write blocks beyond that, like a full TCP window.
//
// Randomness is deterministic: each direction draws jitter and loss from its
// own generator seeded from Profile.Seed (the first direction from Seed, the
// reverse direction from Seed with a different stream), one loss draw per
// segment when Loss > 0 and one jitter draw per segment when Jitter > 0.
package netem

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Emulator limits and constants.
const (
	// MaxSegment is the largest segment one Write becomes; larger writes
	// are split into several segments.
	MaxSegment = 64 << 10
	// DefaultWindow is the in-flight limit per direction when
	// Profile.Window is 0.
	DefaultWindow = 4 << 20
	// MinRTO is the smallest retransmission penalty of a lost segment.
	MinRTO = 200 * time.Millisecond
)

// Profile describes one emulated link. The zero Profile is a perfect link
// (no delay, unlimited rate, no loss). Negative values are treated as zero
// and Loss is clamped to [0, 1].
type Profile struct {
	Delay  time.Duration // one-way delay (RTT/2)
	Jitter time.Duration // uniform ±Jitter added to each segment's delay; never reorders bytes
	Rate   int64         // bytes per second, 0 = unlimited (serialisation delay per segment)
	// Loss is the probability that a segment is lost. Loss is modelled for
	// TCP-like streams as a retransmission penalty: the segment and
	// everything behind it is held back by an RTO of max(MinRTO, 2·RTT).
	Loss   float64
	Seed   int64 // seed of the deterministic jitter and loss generators
	Window int   // bytes in flight per direction before Write blocks; 0 = DefaultWindow
}

// normalised returns p with out-of-range values replaced as documented.
func (p Profile) normalised() Profile {
	p.Delay = max(p.Delay, 0)
	p.Jitter = max(p.Jitter, 0)
	p.Rate = max(p.Rate, 0)
	if math.IsNaN(p.Loss) || p.Loss < 0 {
		p.Loss = 0
	}
	p.Loss = min(p.Loss, 1)
	if p.Window <= 0 {
		p.Window = DefaultWindow
	}
	return p
}

// RTO is the retransmission penalty a lost segment pays under p:
// max(MinRTO, 2·RTT) with RTT = 2·Delay.
func (p Profile) RTO() time.Duration {
	return max(MinRTO, 4*max(p.Delay, 0))
}

// String describes the profile compactly, e.g.
// "delay=25ms jitter=2ms rate=10mbit loss=0.5%", for benchmark names and logs.
func (p Profile) String() string {
	p = p.normalised()
	var parts []string
	parts = append(parts, "delay="+p.Delay.String())
	if p.Jitter > 0 {
		parts = append(parts, "jitter="+p.Jitter.String())
	}
	if p.Rate > 0 {
		parts = append(parts, "rate="+FormatRate(p.Rate))
	} else {
		parts = append(parts, "rate=unlimited")
	}
	if p.Loss > 0 {
		parts = append(parts, "loss="+strconv.FormatFloat(p.Loss*100, 'g', 4, 64)+"%")
	}
	return strings.Join(parts, " ")
}

// FormatRate renders a rate in bytes per second the way ParseRate reads it,
// choosing the largest bit unit that is exact (e.g. 1250000 → "10mbit").
func FormatRate(bytesPerSec int64) string {
	if bytesPerSec <= 0 {
		return "0"
	}
	if bytesPerSec > math.MaxInt64/8 {
		return strconv.FormatInt(bytesPerSec, 10) + "B/s"
	}
	bits := bytesPerSec * 8
	for _, u := range []struct {
		name string
		mult int64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits%u.mult == 0 {
			return strconv.FormatInt(bits/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(bytesPerSec, 10) + "B/s"
}

// ParseRate reads a link rate and returns it in bytes per second.
//
// The form is a decimal number, an optional prefix and a unit:
//
//	prefixes: k M G T (powers of 1000, any case) and Ki Mi Gi Ti (powers of 1024)
//	bits:     bit, bit/s, b, b/s         e.g. "10mbit", "1gbit", "512kbit", "100Mb/s"
//	bytes:    B, B/s                     e.g. "100kB", "1.5MB/s", "64KiB"
//	no unit:  bytes per second           e.g. "125000"
//
// "0" means unlimited and returns 0. The ambiguous "bps" (bits in most
// places, bytes in tc) is refused with an error naming both readings.
func ParseRate(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("netem: empty rate; write e.g. \"10mbit\" or \"100kB\"")
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, rest := in[:i], strings.TrimSpace(in[i:])
	if num == "" {
		return 0, fmt.Errorf("netem: rate %q does not start with a number; write e.g. \"10mbit\"", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("netem: rate %q: bad number %q", s, num)
	}
	if strings.HasSuffix(strings.ToLower(rest), "bps") {
		return 0, fmt.Errorf("netem: rate %q is ambiguous (\"bps\" means bits to some tools and bytes to tc); write e.g. \"10mbit\" for bits or \"10MB/s\" for bytes per second", s)
	}
	unit, perSecond := strings.CutSuffix(rest, "/s")
	var bitsUnit bool
	switch {
	case strings.HasSuffix(strings.ToLower(unit), "bit"):
		bitsUnit, unit = true, unit[:len(unit)-3]
	case strings.HasSuffix(unit, "b"):
		bitsUnit, unit = true, unit[:len(unit)-1]
	case strings.HasSuffix(unit, "B"):
		unit = unit[:len(unit)-1]
	case unit == "" && perSecond:
		return 0, fmt.Errorf("netem: rate %q has no unit before \"/s\"; write e.g. \"10mbit/s\" or \"100kB/s\"", s)
	case unit != "":
		return 0, fmt.Errorf("netem: rate %q: unknown unit %q; use bit, b (bits) or B (bytes) with an optional k, M, G, T or Ki, Mi, Gi, Ti prefix", s, rest)
	}
	mult := 1.0
	switch strings.ToLower(unit) {
	case "":
	case "k":
		mult = 1e3
	case "m":
		mult = 1e6
	case "g":
		mult = 1e9
	case "t":
		mult = 1e12
	case "ki":
		mult = 1 << 10
	case "mi":
		mult = 1 << 20
	case "gi":
		mult = 1 << 30
	case "ti":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("netem: rate %q: unknown unit %q; use bit, b (bits) or B (bytes) with an optional k, M, G, T or Ki, Mi, Gi, Ti prefix", s, rest)
	}
	bytes := v * mult
	if bitsUnit {
		bytes /= 8
	}
	if bytes == 0 {
		return 0, nil
	}
	if bytes < 1 {
		return 0, fmt.Errorf("netem: rate %q is below 1 byte per second; use \"0\" for an unlimited link", s)
	}
	if bytes >= math.MaxInt64/2 {
		return 0, fmt.Errorf("netem: rate %q is too large", s)
	}
	return int64(bytes), nil
}
