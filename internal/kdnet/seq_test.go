package kdnet

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestSeqWindowAccept(t *testing.T) {
	t.Parallel()
	type step struct {
		ch     Channel
		h2t    bool
		seq    uint64
		accept bool
	}
	const D, C = ChannelData, ChannelControl
	tests := []struct {
		name  string
		steps []step
	}{
		{"advancing", []step{{D, false, 1, true}, {D, false, 2, true}, {D, false, 7, true}}},
		{"duplicate", []step{{D, false, 3, true}, {D, false, 3, false}, {D, false, 4, true}}},
		{"stale", []step{{D, false, 5, true}, {D, false, 4, false}, {D, false, 1, false}, {D, false, 6, true}}},
		{"rejection keeps mark", []step{{D, false, 5, true}, {D, false, 2, false}, {D, false, 3, false}, {D, false, 5, false}}},
		{"first accepted whatever seq", []step{{D, false, 0, true}, {D, false, 0, false}, {D, false, 1, true}}},
		{"first high seq", []step{{C, false, 2694, true}, {C, false, 2724, true}, {C, false, 2694, false}}},
		{"channels independent", []step{{C, false, 2694, true}, {D, false, 2, true}, {D, false, 3, true}, {C, false, 2695, true}, {D, false, 3, false}}},
		{"directions independent", []step{{D, true, 5, true}, {D, false, 1, true}, {D, true, 4, false}, {D, false, 2, true}}},
		{"max seq", []step{{D, false, MaxSeq - 1, true}, {D, false, MaxSeq, true}, {D, false, MaxSeq, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w SeqWindow
			for i, s := range tt.steps {
				err := w.Accept(Datagram{Channel: s.ch, HostToTarget: s.h2t, Seq: s.seq})
				if s.accept && err != nil {
					t.Fatalf("step %d (%s h2t=%v seq %d): rejected: %v", i, s.ch, s.h2t, s.seq, err)
				}
				if !s.accept {
					if !errors.Is(err, ErrReplay) {
						t.Fatalf("step %d (%s h2t=%v seq %d): err %v, want ErrReplay", i, s.ch, s.h2t, s.seq, err)
					}
					if !strings.Contains(err.Error(), s.ch.String()+"-channel seq") {
						t.Errorf("error %q does not say which channel", err)
					}
				}
			}
		})
	}
}

func TestSeqWindowReset(t *testing.T) {
	t.Parallel()
	var w SeqWindow
	if _, ok := w.Last(ChannelData, false); ok {
		t.Fatal("fresh window has a mark")
	}
	for _, d := range []Datagram{{Channel: ChannelData, Seq: 40}, {Channel: ChannelControl, Seq: 2724}, {Channel: ChannelData, HostToTarget: true, Seq: 9}} {
		if err := w.Accept(d); err != nil {
			t.Fatal(err)
		}
	}
	if seq, ok := w.Last(ChannelData, false); !ok || seq != 40 {
		t.Errorf("Last = %d, %v; want 40, true", seq, ok)
	}
	first := w.NextSeq()
	// A rebooted target pokes with a low seq: stale until Reset.
	reboot := Datagram{Channel: ChannelControl, Seq: 3}
	if err := w.Accept(reboot); !errors.Is(err, ErrReplay) {
		t.Fatalf("reboot poke before Reset: %v", err)
	}
	w.Reset()
	for _, ch := range []Channel{ChannelData, ChannelControl} {
		for _, h2t := range []bool{false, true} {
			if _, ok := w.Last(ch, h2t); ok {
				t.Errorf("Reset kept the %s h2t=%v mark", ch, h2t)
			}
		}
	}
	if err := w.Accept(reboot); err != nil {
		t.Errorf("reboot poke after Reset: %v", err)
	}
	if err := w.Accept(Datagram{Channel: ChannelData, Seq: 1}); err != nil {
		t.Errorf("data seq 1 after Reset: %v", err)
	}
	if next := w.NextSeq(); next != first+1 {
		t.Errorf("NextSeq after Reset = %d, want %d (outgoing never rewinds)", next, first+1)
	}
	if err := w.Accept(Datagram{Channel: 2, Seq: 1}); !errors.Is(err, ErrChannel) {
		t.Errorf("unknown channel: %v", err)
	}
	if _, ok := w.Last(5, false); ok {
		t.Error("Last on unknown channel reports a mark")
	}
}

func TestSeqWindowNextSeqConcurrent(t *testing.T) {
	t.Parallel()
	var w SeqWindow
	if got := w.NextSeq(); got != 1 {
		t.Fatalf("first NextSeq = %d, want 1", got)
	}
	const workers, each = 8, 200
	seen := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				seen <- w.NextSeq()
			}
		})
	}
	wg.Wait()
	close(seen)
	got := map[uint64]bool{}
	for s := range seen {
		if got[s] || s < 2 || s > workers*each+1 {
			t.Fatalf("seq %d duplicated or out of range", s)
		}
		got[s] = true
	}
	if len(got) != workers*each {
		t.Errorf("%d distinct seqs, want %d", len(got), workers*each)
	}
}
