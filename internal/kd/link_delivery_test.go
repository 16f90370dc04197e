package kd

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// rawPeer is the far end of a host link, written and read packet by packet.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	dec  Decoder
	buf  []byte
}

func (p *rawPeer) next() Packet {
	p.t.Helper()
	for {
		if f, ok := p.dec.Next(); ok {
			return f.Packet
		}
		n, err := p.conn.Read(p.buf)
		if err != nil {
			p.t.Fatalf("peer read: %v", err)
		}
		p.dec.Feed(p.buf[:n])
	}
}

func (p *rawPeer) send(pk Packet) {
	p.t.Helper()
	if _, err := p.conn.Write(AppendPacket(nil, pk)); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// A host link completes a send only on its ACK: no packet a kernel sends
// proves that it took the host's request. A state change may come from a
// kernel that was running (it only polls for the break-in byte) and never
// saw the request; a manipulate reply may answer the request before; a
// kernel waiting for its own ACK that gets the request answers RESEND and
// drops it. Had the host taken any of them as an ACK, the request would be
// lost and the host's ids would run one ahead of the kernel's, which then
// drops every later request as a duplicate (FuzzServerSession against a
// strict kernel found both). So the request stays pending and goes again,
// with the same id, on RESEND or on the host's time-out, until the kernel
// acknowledges it (as new, or as a duplicate if it had it after all).
func TestHostSendCompletesOnlyOnAck(t *testing.T) {
	rv, c2 := NewReadVirtual(0x1000, 16), NewContinue2(Continue2Args{})
	read, cont := rv.Append(nil), c2.Append(nil)
	stop := Packet{Type: TypeStateChange64, ID: InitialPacketID, Payload: []byte("stopped")}
	reply := Packet{Type: TypeStateManipulate, ID: InitialPacketID, Payload: read}
	for _, tc := range []struct {
		name   string
		req    []byte
		peer   Packet
		resend bool // the kernel asks for the request again; else the host's timer fires
	}{
		{"read, then a state change from a kernel that was running", read, stop, true},
		{"continue whose ACK was lost, then the next stop", cont, stop, false},
		{"read whose ACK was lost, then its reply", read, reply, false},
		{"read sent while the kernel still sent the reply before", read, reply, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host, b := rawHost(t)
				b.SetDeadline(time.Now().Add(time.Minute))
				peer := &rawPeer{t: t, conn: b, buf: make([]byte, 4096)}

				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				sent := make(chan error, 1)
				go func() { sent <- host.Send(ctx, TypeStateManipulate, tc.req) }()
				first := peer.next()
				if first.Type != TypeStateManipulate || first.ID != InitialPacketID {
					t.Fatalf("host sent %v first", first)
				}
				// No ACK: the request went nowhere, or its ACK was lost.
				peer.send(tc.peer)
				if ack := peer.next(); ack.Type != TypeAcknowledge || ack.ID != InitialPacketID {
					t.Fatalf("host answered the peer's packet with %v", ack)
				}
				if m, err := host.Recv(ctx); err != nil || m.Packet.Type != tc.peer.Type {
					t.Fatalf("host delivered %v, %v", m, err)
				}
				synctest.Wait()
				select {
				case err := <-sent:
					t.Fatalf("the send completed (err %v) on a %v, which proves nothing", err, tc.peer.Type)
				default:
				}
				if tc.resend {
					peer.send(Packet{Type: TypeResend})
				}
				again := peer.next()
				if again.Type != TypeStateManipulate || again.ID != first.ID || string(again.Payload) != string(first.Payload) {
					t.Fatalf("the host then sent %v, want the request again as id %#x", again, first.ID)
				}
				peer.send(Packet{Type: TypeAcknowledge, ID: again.ID})
				if err := <-sent; err != nil {
					t.Fatalf("send: %v", err)
				}
				// The ids agree: the next request carries the id a kernel
				// expects after taking the first.
				go func() { sent <- host.Send(ctx, TypeStateManipulate, read) }()
				if n := peer.next(); n.ID != InitialPacketID|1 {
					t.Fatalf("next request has id %#x, want %#x", n.ID, InitialPacketID|1)
				}
				peer.send(Packet{Type: TypeAcknowledge, ID: InitialPacketID | 1})
				if err := <-sent; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
