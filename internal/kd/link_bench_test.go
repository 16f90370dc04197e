package kd

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkLinkRoundTrip measures one debugger call over KDCOM: the host
// sends a STATE_MANIPULATE request, the target receives it and answers,
// the host receives the answer (each data packet acknowledged by the other
// side's link). allocs/op counts both links, over net.Pipe and over a unix
// socket pair. net.Pipe allocates a timer for every write deadline the
// link sets; the link's own steady-state cost is one allocation per
// delivered packet: Recv hands the receiver a payload it owns.
func BenchmarkLinkRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name  string
		pair  func(b *testing.B) (net.Conn, net.Conn)
		reply int // reply payload bytes
	}{
		{"pipe/small", pipePair, ManipulateSize + 16}, {"pipe/max", pipePair, MaxPayload},
		{"unix/small", unixPair, ManipulateSize + 16}, {"unix/max", unixPair, MaxPayload},
	} {
		b.Run(bc.name, func(b *testing.B) {
			x, y := bc.pair(b)
			host := NewHostLink(x, Config{})
			tgt := NewTargetLink(y, Config{})
			defer host.Close()
			defer tgt.Close()
			ctx := context.Background()
			req := NewReadVirtual(0x1000, 16)
			reqBytes := req.Append(nil)
			reply := make([]byte, bc.reply)
			echo := make(chan error, 1)
			go func() {
				// As on a real link the target speaks first (its state
				// change, with the sync bit): the host adopts its ids.
				if err := tgt.Send(ctx, TypeStateChange64, make([]byte, 64)); err != nil {
					echo <- err
					return
				}
				for {
					m, err := tgt.Recv(ctx)
					if err != nil {
						echo <- nil
						return
					}
					if m.Kind != MsgPacket {
						continue
					}
					if err := tgt.Send(ctx, TypeStateManipulate, reply); err != nil {
						if errors.Is(err, ErrClosed) {
							err = nil // closed while the last reply waited for its ACK
						}
						echo <- err
						return
					}
				}
			}()
			for {
				m, err := host.Recv(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if m.Kind == MsgPacket {
					break
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(reqBytes) + len(reply)))
			b.ResetTimer()
			for b.Loop() {
				if err := host.Send(ctx, TypeStateManipulate, reqBytes); err != nil {
					b.Fatal(err)
				}
				for {
					m, err := host.Recv(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if m.Kind == MsgPacket {
						break
					}
				}
			}
			b.StopTimer()
			host.Close()
			tgt.Close()
			if err := <-echo; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func pipePair(*testing.B) (net.Conn, net.Conn) { return net.Pipe() }

func unixPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("unix", filepath.Join(b.TempDir(), "l"))
	if err != nil {
		b.Skipf("no unix sockets: %v", err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		got <- c
	}()
	x, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	y := <-got
	if y == nil {
		b.Fatal("accept failed")
	}
	return x, y
}
