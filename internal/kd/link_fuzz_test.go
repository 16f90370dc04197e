package kd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fuzzPeer is the hostile end of a link under fuzzing: Read hands the link
// the chunks the test pushes, Write keeps (a bounded amount of) what the
// link sends back.
type fuzzPeer struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	written int
}

func newFuzzPeer() *fuzzPeer {
	return &fuzzPeer{in: make(chan []byte), closed: make(chan struct{})}
}

func (p *fuzzPeer) Read(b []byte) (int, error) {
	select {
	case c := <-p.in:
		return copy(b, c), nil // chunks are smaller than the link's buffers
	case <-p.closed:
		return 0, io.EOF
	}
}

func (p *fuzzPeer) Write(b []byte) (int, error) {
	select {
	case <-p.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	p.mu.Lock()
	p.written += len(b)
	p.mu.Unlock()
	return len(b), nil
}

func (p *fuzzPeer) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// Link program encoding for FuzzLink: byte 0 holds flags (bit 0: target
// role, bit 1: a data packet is being sent when the stream starts, bit 2:
// a second one queued behind it); then records of one control byte and up
// to 63 stream bytes: the low 6 bits give the chunk length, the top 2 bits
// what the local side does once the link has consumed the chunk (0 nothing,
// 1 let the inter-byte time-out pass, 2 receive one message, 3 let the ACK
// time-out pass).
const (
	fuzzTarget   = 1 << 0
	fuzzSending  = 1 << 1
	fuzzSending2 = 1 << 2

	fuzzStall = 1 << 6
	fuzzRecv  = 2 << 6
	fuzzRetx  = 3 << 6
)

// fuzzProgram builds a FuzzLink input: flags, then each chunk (≤ 63 bytes,
// longer ones are split) followed by the action in its control byte.
func fuzzProgram(flags byte, chunks ...any) []byte {
	prog := []byte{flags}
	for i := 0; i < len(chunks); i += 2 {
		b := chunks[i].([]byte)
		action := chunks[i+1].(int)
		for len(b) > 63 {
			prog = append(prog, 63)
			prog = append(prog, b[:63]...)
			b = b[63:]
		}
		prog = append(prog, byte(action)|byte(len(b)))
		prog = append(prog, b...)
	}
	return prog
}

// FuzzLink runs the link engine, in either role, against a hostile byte
// stream driven by a program (see fuzzProgram), inside a synctest bubble so
// its timers run on a fake clock. Whatever the stream, the link must not
// panic, must deliver only data packets that arrived intact (checksum,
// trailer and all: the exact encoding is in the stream), must hold at most
// QueueLimit (+1 for a restart notice) undelivered messages however long
// nobody reads, must answer no more than the stream asked for, and must
// stop every goroutine on Close (synctest reports any left blocked).
func FuzzLink(f *testing.F) {
	pkt := func(t PacketType, id uint32, payload string) []byte {
		return AppendPacket(nil, Packet{Type: t, ID: id, Payload: []byte(payload)})
	}
	ctl := func(t PacketType, id uint32) []byte { return AppendControl(nil, t, id) }
	good := pkt(TypeStateManipulate, InitialPacketID, "hello")
	restart := pkt(TypeStateChange64, InitialPacketID|SyncPacketID, "state change")
	bad := bytes.Clone(good)
	bad[HeaderSize] ^= 1 // payload no longer matches the checksum
	var flood []byte     // more packets than the queue holds, nobody reading
	for i := range 2 * 8 {
		flood = append(flood, pkt(TypeStateManipulate, InitialPacketID|uint32(i&1), "flood")...)
		flood = append(flood, BreakInByte)
	}
	for _, flags := range []byte{0, fuzzTarget, fuzzSending, fuzzTarget | fuzzSending | fuzzSending2} {
		f.Add(fuzzProgram(flags, good, fuzzRecv, good, fuzzRecv))
		f.Add(fuzzProgram(flags, restart, fuzzRecv, ctl(TypeAcknowledge, InitialPacketID), 0, pkt(TypeStateManipulate, InitialPacketID^1, "next"), fuzzRecv))
		f.Add(fuzzProgram(flags, bad, 0, good[:20], fuzzStall, good[20:], fuzzRecv))
		f.Add(fuzzProgram(flags, ctl(TypeReset, 0), fuzzRecv, ctl(TypeResend, 0), fuzzRetx, []byte{BreakInByte, BreakInByte}, fuzzRecv))
		f.Add(fuzzProgram(flags, append([]byte("noise 0000 iiii"), good...), fuzzRecv, bytes.Repeat(good, 3), fuzzRetx))
		f.Add(fuzzProgram(flags, flood, 0, ctl(TypeReset, 0), 0, flood, fuzzStall))
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) == 0 {
			return
		}
		synctest.Test(t, func(t *testing.T) { runLinkProgram(t, prog) })
	})
}

func runLinkProgram(t *testing.T, prog []byte) {
	const limit = 8
	cfg := Config{QueueLimit: limit, AckTimeout: 500 * time.Millisecond, InterByteTimeout: 250 * time.Millisecond}
	flags := prog[0]
	prog = prog[1:]
	newLink := NewHostLink
	if flags&fuzzTarget != 0 {
		newLink = NewTargetLink
	}
	peer := newFuzzPeer()
	l := newLink(peer, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	send := func(payload string) {
		senders.Go(func() {
			err := l.Send(ctx, TypeStateManipulate, []byte(payload))
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
				t.Errorf("Send: unexpected error %v", err)
			}
		})
	}
	if flags&fuzzSending != 0 {
		send("request one")
		if flags&fuzzSending2 != 0 {
			send("request two")
		}
	}

	var stream []byte
	check := func(m Message) {
		if m.Kind != MsgPacket {
			return
		}
		if len(m.Packet.Payload) > MaxPayload {
			t.Fatalf("delivered a %d-byte payload", len(m.Packet.Payload))
		}
		if enc := AppendPacket(nil, m.Packet); !bytes.Contains(stream, enc) {
			t.Fatalf("delivered %v, which never arrived intact (checksum/trailer)", m.Packet)
		}
	}
	recv := func() bool {
		rctx, rcancel := context.WithTimeout(ctx, time.Millisecond)
		defer rcancel()
		m, err := l.Recv(rctx)
		if err != nil {
			return false
		}
		check(m)
		return true
	}

	chunks := 0
	for len(prog) > 0 {
		c := prog[0]
		n := min(int(c&63), len(prog)-1)
		chunk := prog[1 : 1+n]
		prog = prog[1+n:]
		if n > 0 {
			stream = append(stream, chunk...)
			chunks++
			select {
			case peer.in <- chunk:
			case <-l.Done():
				t.Fatalf("link stopped on hostile input: %v", l.Err())
			}
		}
		synctest.Wait()
		switch c &^ 63 {
		case fuzzStall:
			time.Sleep(cfg.InterByteTimeout + time.Millisecond)
		case fuzzRecv:
			recv()
		case fuzzRetx:
			time.Sleep(cfg.AckTimeout + time.Millisecond)
		}
	}
	synctest.Wait()

	// Nobody read for a while: what is waiting is bounded.
	waiting := 0
	for recv() {
		waiting++
	}
	if waiting > limit+1 {
		t.Fatalf("%d messages waited for a reader (QueueLimit %d)", waiting, limit)
	}
	// Every byte the link wrote was provoked: at most one answer (a
	// control packet, or a retransmission of one of our short data
	// packets) per stream byte (a bad leader is rescanned from its next
	// byte) and per timer event (at most two per chunk, plus the drain).
	peer.mu.Lock()
	written := peer.written
	peer.mu.Unlock()
	if limit := (len(stream) + 2*chunks + 16) * (HeaderSize + 32); written > limit {
		t.Fatalf("link wrote %d bytes for a %d-byte stream in %d chunks", written, len(stream), chunks)
	}

	cancel()
	senders.Wait()
	l.Close()
	if err := l.Err(); err == nil {
		t.Fatal("closed link reports no error")
	}
}
