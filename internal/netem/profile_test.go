package netem

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"10mbit", 1_250_000},
		{"1gbit", 125_000_000},
		{"512kbit", 64_000},
		{"100kB", 100_000},
		{"100KB/s", 100_000},
		{"1.5MB/s", 1_500_000},
		{"64KiB", 65_536},
		{"8Mibit", 1 << 20},
		{"10Mbit/s", 1_250_000},
		{"10Mb/s", 1_250_000},
		{"10MBIT", 1_250_000},
		{"125000", 125_000},
		{" 2 gbit ", 250_000_000},
		{"8bit", 1},
		{"1tbit", 125_000_000_000},
		{"0", 0},
		{"0mbit", 0},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantSub string
	}{
		{"", "empty rate"},
		{"mbit", "does not start with a number"},
		{"10mbps", "ambiguous"},
		{"10 bps", "ambiguous"},
		{"10furlongs", "unknown unit"},
		{"10xbit", "unknown unit"},
		{"1.2.3mbit", "bad number"},
		{"1bit", "below 1 byte"},
		{"10/s", "no unit"},
		{"99999999999999999999tbit", "too large"},
	}
	for _, tt := range tests {
		_, err := ParseRate(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
			t.Errorf("ParseRate(%q) error = %v; want one containing %q", tt.in, err, tt.wantSub)
		}
	}
}

func TestFormatRateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []int64{1, 7, 125, 1_250_000, 125_000_000, 65_536, 123_456_789} {
		s := FormatRate(r)
		got, err := ParseRate(s)
		if err != nil || got != r {
			t.Errorf("ParseRate(FormatRate(%d) = %q) = %d, %v", r, s, got, err)
		}
	}
}

func TestProfileStringAndRTO(t *testing.T) {
	t.Parallel()
	p := Profile{Delay: 25 * time.Millisecond, Jitter: 2 * time.Millisecond, Rate: 1_250_000, Loss: 0.005}
	if got, want := p.String(), "delay=25ms jitter=2ms rate=10mbit loss=0.5%"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := p.RTO(); got != MinRTO {
		t.Errorf("RTO() with 25ms delay = %v, want MinRTO %v", got, MinRTO)
	}
	if got, want := (Profile{Delay: 100 * time.Millisecond}).RTO(), 400*time.Millisecond; got != want {
		t.Errorf("RTO() with 100ms delay = %v, want 2·RTT = %v", got, want)
	}
	n := Profile{Delay: -1, Jitter: -1, Rate: -5, Loss: 7}.normalised()
	if n.Delay != 0 || n.Jitter != 0 || n.Rate != 0 || n.Loss != 1 || n.Window != DefaultWindow {
		t.Errorf("normalised() = %+v", n)
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10mbit", "1gbit", "512kbit", "100kB", "1.5MB/s", "64KiB", "0", "10mbps", "", "1e9", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if r != 0 {
				t.Fatalf("ParseRate(%q) = %d with error %v", s, r, err)
			}
			return
		}
		if r < 0 {
			t.Fatalf("ParseRate(%q) = %d < 0", s, r)
		}
		if r > 0 {
			if back, err := ParseRate(FormatRate(r)); err != nil || back != r {
				t.Fatalf("ParseRate(FormatRate(%d)) = %d, %v", r, back, err)
			}
		}
	})
}
