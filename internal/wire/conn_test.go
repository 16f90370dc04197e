package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// rawClient runs Server on one end and a hand-written no-password client
// handshake on the other, and returns the server Conn plus the raw client end.
func rawClient(t *testing.T, pair pairFunc, scfg Config) (*Conn, net.Conn, *Decoder) {
	t.Helper()
	cn, sn := pair(t)
	ch := make(chan hsResult, 1)
	go func() {
		c, err := Server(context.Background(), sn, srv(scfg))
		ch <- hsResult{c, err}
	}()
	d := NewDecoder(cn)
	writeRaw(t, cn, AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: Version, MaxVersion: Version, Software: "raw"})))
	if f, err := readFrame(t, d, cn); err != nil || f.Type != TypeHelloReply {
		t.Fatalf("HelloReply: %v %v", f.Type, err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return r.conn, cn, d
}

// recvAsync runs Recv in a goroutine.
func recvAsync(c *Conn) <-chan recvResult {
	ch := make(chan recvResult, 1)
	go func() {
		f, err := c.Recv()
		f.Payload = bytes.Clone(f.Payload)
		ch <- recvResult{f, err}
	}()
	return ch
}

type recvResult struct {
	f   Frame
	err error
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func TestConnExchange(t *testing.T) {
	t.Parallel()
	type msg struct {
		fromClient bool
		typ        Type
		payload    []byte
	}
	kd := EncodeKD(7, bytes.Repeat([]byte{0xA5}, 4000))
	msgs := []msg{
		{true, TypeOpen, EncodeOpen(Open{Target: "com:pipe,port=/tmp/vm.sock"})},
		{false, TypeOpened, EncodeOpened(Opened{Session: 1, Info: "sim"})},
		{false, TypeKD, kd},
		{true, TypeKD, EncodeKD(2, make([]byte, 56))},
		{true, TypeBreakIn, nil},
		{true, TypeReset, nil},
		{false, TypeState, EncodeState(State{State: StateStopped})},
		{true, TypeControl, EncodeControl(Control{ID: 9, Command: CmdSetOption, Body: []byte("readahead=0")})},
		{false, TypeControl, EncodeControl(Control{ID: 9, Command: CmdSetOption})},
		{true, TypeDetach, nil},
		{false, TypeDetached, nil},
	}
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cc, sc := connPair(t, pair, Config{}, Config{})
		for i, m := range msgs {
			from, to := cc, sc
			if !m.fromClient {
				from, to = sc, cc
			}
			got := recvAsync(to)
			if err := from.Send(m.typ, m.payload); err != nil {
				t.Fatalf("msg %d: Send(%s): %v", i, m.typ, err)
			}
			r := wait(t, got)
			if r.err != nil || r.f.Type != m.typ || !bytes.Equal(r.f.Payload, m.payload) {
				t.Fatalf("msg %d: got %s (%d bytes), %v; want %s (%d bytes)", i, r.f.Type, len(r.f.Payload), r.err, m.typ, len(m.payload))
			}
		}
		// SendKD produces the same frame as Send(TypeKD, EncodeKD(...)).
		got := recvAsync(sc)
		if err := cc.SendKD(3, []byte("dbgprint")); err != nil {
			t.Fatal(err)
		}
		r := wait(t, got)
		if typ, p, err := DecodeKD(r.f.Payload); err != nil || typ != 3 || string(p) != "dbgprint" {
			t.Fatalf("SendKD arrived as %d %q %v", typ, p, err)
		}
	})
}

func TestConnSendRefuses(t *testing.T) {
	t.Parallel()
	cc, sc := connPair(t, tcpPair, Config{}, Config{})
	tests := []struct {
		name string
		c    *Conn
		typ  Type
		p    []byte
		want string
	}{
		{"hello", cc, TypeHello, nil, "sent by Client/Server"},
		{"auth ok", sc, TypeAuthOK, nil, "sent by Client/Server"},
		{"error", cc, TypeError, nil, "SendError"},
		{"bye", sc, TypeBye, nil, "Close"},
		{"client sends Opened", cc, TypeOpened, nil, "client may not send Opened"},
		{"server sends Open", sc, TypeOpen, nil, "server may not send Open"},
		{"server sends BreakIn", sc, TypeBreakIn, nil, "server may not send BreakIn"},
		{"unknown", cc, 0x66, nil, "unknown frame type"},
		{"oversized", cc, TypeKD, make([]byte, MaxPayload+1), "exceeds"},
	}
	for _, tt := range tests {
		if err := tt.c.Send(tt.typ, tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Send error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if err := cc.SendKD(1, make([]byte, MaxKDPayload+1)); err == nil {
		t.Error("SendKD accepted an oversized payload")
	}
}

func TestConnPingPong(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		sc, cn, d := rawClient(t, pair, Config{KeepAlive: -1})
		got := recvAsync(sc)
		ping := []byte{9, 8, 7, 6, 5, 4, 3, 2}
		writeRaw(t, cn, AppendFrame(nil, TypePing, ping))
		f, err := readFrame(t, d, cn)
		if err != nil || f.Type != TypePong || !bytes.Equal(f.Payload, ping) {
			t.Fatalf("answer to Ping = %s %x %v, want Pong %x", f.Type, f.Payload, err, ping)
		}
		// Pongs are absorbed; the next real frame is delivered.
		writeRaw(t, cn, AppendFrame(nil, TypePong, ping))
		writeRaw(t, cn, AppendFrame(nil, TypeBreakIn, nil))
		if r := wait(t, got); r.err != nil || r.f.Type != TypeBreakIn {
			t.Fatalf("Recv = %s, %v; want BreakIn", r.f.Type, r.err)
		}
	})
}

// The keep-alive timers run on testing/synctest's fake clock over an
// in-memory pipe: the silent windows pass in no real time. (TCP adds
// nothing to the timer logic; its deadlines are exercised by every other
// test over the tcp transport.)
func TestConnKeepAliveDetectsSilentPeer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		const ka = 30 * time.Millisecond
		// The raw client completes the handshake, then neither reads
		// nor writes anything.
		sc, _, _ := rawClient(t, pipePair, Config{KeepAlive: ka})
		r := wait(t, recvAsync(sc))
		if !errors.Is(r.err, ErrPeerDead) || !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("Recv error = %v, want ErrPeerDead and a deadline error", r.err)
		}
		if d := time.Since(start); d < 3*ka || d > 5*ka {
			t.Errorf("a silent peer was declared dead after %v, want three to five keep-alive intervals of %v", d, ka)
		}
		// The error is sticky and Send fails too.
		if _, err := sc.Recv(); err != r.err {
			t.Errorf("second Recv = %v, want the same error", err)
		}
		if err := sc.Send(TypeOpened, EncodeOpened(Opened{})); err == nil {
			t.Error("Send succeeded on a dead connection")
		}
	})
}

func TestConnKeepAliveKeepsIdleConnectionAlive(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const ka = 100 * time.Millisecond
		cc, sc := connPair(t, pipePair, Config{KeepAlive: ka}, Config{KeepAlive: ka})
		cgot := recvAsync(cc) // answers the server's pings; ends at Close
		sgot := recvAsync(sc)
		time.Sleep(10 * ka) // fake clock: more than three dead-peer windows of silence
		synctest.Wait()
		select {
		case r := <-sgot:
			t.Fatalf("server Recv ended during an idle period: %v", r.err)
		default:
		}
		if err := cc.Send(TypeBreakIn, nil); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, sgot); r.err != nil || r.f.Type != TypeBreakIn {
			t.Fatalf("server Recv = %s, %v; want BreakIn", r.f.Type, r.err)
		}
		cc.Close()
		if r := wait(t, cgot); !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("client Recv after Close = %v, want net.ErrClosed", r.err)
		}
		sc.Close()
	})
}

func TestConnCloseWithReason(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cc, sc := connPair(t, pair, Config{}, Config{})
		got := recvAsync(cc)
		if err := sc.CloseWithReason(ServerShutdown); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, got); r.err != io.EOF {
			t.Fatalf("Recv after Bye = %v, want io.EOF", r.err)
		}
		if cc.ByeReason() != ServerShutdown {
			t.Errorf("ByeReason = %v, want ServerShutdown", cc.ByeReason())
		}
		if _, err := cc.Recv(); err != io.EOF {
			t.Errorf("second Recv = %v, want io.EOF", err)
		}
		for range 2 {
			if err := cc.Close(); err != nil {
				t.Errorf("Close after peer Bye = %v", err)
			}
			if err := sc.Close(); err != nil {
				t.Errorf("repeated Close = %v", err)
			}
		}
		if err := sc.Send(TypeKD, EncodeKD(1, nil)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Send after Close = %v, want net.ErrClosed", err)
		}
	})
}

func TestConnSendError(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cc, sc := connPair(t, pair, Config{}, Config{})
		got := recvAsync(cc)
		if err := sc.SendError(InUse, "target com:port=COM1 is owned by session 3"); err != nil {
			t.Fatal(err)
		}
		r := wait(t, got)
		var re *RemoteError
		if !errors.As(r.err, &re) || re.Code != InUse || !strings.Contains(re.Msg, "session 3") {
			t.Fatalf("Recv = %v, want RemoteError InUse", r.err)
		}
		if err := sc.Send(TypeOpened, EncodeOpened(Opened{})); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Send after SendError = %v, want net.ErrClosed", err)
		}
	})
}

func TestConnProtocolViolations(t *testing.T) {
	t.Parallel()
	tests := []badInput{
		{"unknown type", AppendFrame(nil, 0x66, []byte{1}), BadFrame},
		{"handshake frame", AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: Version, MaxVersion: Version})), BadFrame},
		{"wrong direction", AppendFrame(nil, TypeOpened, EncodeOpened(Opened{})), BadFrame},
		{"1 GiB frame", header(TypeKD, 0, 1<<30), FrameTooLarge},
		{"bad magic", []byte("SSH-2.0-x\r\n"), BadFrame},
		{"reserved flags", AppendFrameFlags(nil, TypeKD, 0x0100, []byte{0, 1}), BadFrame},
		{"BreakIn with payload", AppendFrame(nil, TypeBreakIn, []byte{1}), BadFrame},
		{"short KD", AppendFrame(nil, TypeKD, []byte{1}), BadFrame},
		{"short Ping", AppendFrame(nil, TypePing, []byte{1, 2, 3}), BadFrame},
		{"bad Bye", AppendFrame(nil, TypeBye, []byte{1}), BadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc, cn, d := rawClient(t, tcpPair, Config{KeepAlive: -1})
			got := recvAsync(sc)
			writeRaw(t, cn, tt.send)
			r := wait(t, got)
			if code, _ := ErrorCode(r.err); code != tt.code {
				t.Errorf("server Recv error = %v, want code %v", r.err, tt.code)
			}
			if re := expectError(t, d, cn); re.Code != tt.code {
				t.Errorf("server sent %+v, want %v", re, tt.code)
			}
			expectClosed(t, d, cn)
		})
	}
}

func TestConnSkipsIgnorableFrames(t *testing.T) {
	t.Parallel()
	sc, cn, _ := rawClient(t, tcpPair, Config{KeepAlive: -1})
	got := recvAsync(sc)
	writeRaw(t, cn, AppendFrameFlags(nil, 0x66, FlagIgnorable, []byte("future hint")))
	writeRaw(t, cn, AppendFrame(nil, TypeKD, EncodeKD(3, []byte("x"))))
	if r := wait(t, got); r.err != nil || r.f.Type != TypeKD {
		t.Fatalf("Recv = %s, %v; want the KD frame after the ignorable one", r.f.Type, r.err)
	}
}

func TestConnPeerVanishes(t *testing.T) {
	t.Parallel()
	sc, cn, _ := rawClient(t, tcpPair, Config{KeepAlive: -1})
	got := recvAsync(sc)
	cn.Close()
	if r := wait(t, got); !errors.Is(r.err, io.ErrUnexpectedEOF) {
		t.Fatalf("Recv = %v, want io.ErrUnexpectedEOF", r.err)
	}
}

func TestConnCloseUnblocksRecv(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		sc, cn, d := rawClient(t, pair, Config{})
		got := recvAsync(sc)
		// Read the Bye on the raw side so net.Pipe's write completes.
		bye := make(chan Frame, 1)
		go func() {
			f, _ := readFrame(t, d, cn)
			bye <- f
		}()
		if err := sc.Close(); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, got); !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Recv after Close = %v, want net.ErrClosed", r.err)
		}
		if f := wait(t, bye); f.Type != TypeBye || len(f.Payload) != 0 {
			t.Fatalf("peer saw %s %x, want an empty Bye", f.Type, f.Payload)
		}
	})
}

func TestConnConcurrentSend(t *testing.T) {
	t.Parallel()
	const senders, each = 8, 50
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cc, sc := connPair(t, pair, Config{}, Config{})
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for g := range senders {
			wg.Go(func() {
				p := make([]byte, 200+g)
				for i := range each {
					binary.BigEndian.PutUint32(p, uint32(g<<16|i))
					for j := 4; j < len(p); j++ {
						p[j] = byte(g + i + j)
					}
					if err := cc.SendKD(uint16(g), p); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		next := make([]int, senders)
		for n := 0; n < senders*each; n++ {
			f, err := sc.Recv()
			if err != nil {
				t.Fatalf("after %d frames: %v", n, err)
			}
			g, p, err := DecodeKD(f.Payload)
			if err != nil || int(g) >= senders || len(p) != 200+int(g) {
				t.Fatalf("frame %d malformed: %d %d %v", n, g, len(p), err)
			}
			id := binary.BigEndian.Uint32(p)
			if int(id>>16) != int(g) || int(id&0xFFFF) != next[g] {
				t.Fatalf("sender %d: got frame %d, want %d (frames interleaved or lost)", g, id&0xFFFF, next[g])
			}
			for j := 4; j < len(p); j++ {
				if p[j] != byte(int(g)+next[g]+j) {
					t.Fatalf("sender %d frame %d corrupted at byte %d", g, next[g], j)
				}
			}
			next[g]++
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}
