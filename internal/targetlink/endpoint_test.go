package targetlink

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"kdsrv/internal/kd"
	"kdsrv/internal/kdnet"
	"kdsrv/internal/testkit"
)

// TestOpenKDCOM checks that Open gives a com: target a host-role KDCOM
// engine over the target's stream, described by the stream.
func TestOpenKDCOM(t *testing.T) {
	t.Parallel()
	port, accepted := tcpVM(t)
	allow := mustAllow(t, []string{"127.0.0.1:*"}, false)
	ep, err := Open(openCtx(t), target(t, "com:ipport="+port+",port=127.0.0.1"), allow, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	l, ok := ep.(*kd.Link)
	if !ok || l.Role() != kd.RoleHost {
		t.Fatalf("Open(com:ipport) = %T, want a host-role *kd.Link", ep)
	}
	if got, want := l.String(), "ipport 127.0.0.1:"+port; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	vm := <-accepted
	if vm == nil {
		t.Fatal("no connection")
	}
	defer vm.Close()
	// The engine speaks KDCOM on the stream: a break-in is one 0x62 byte.
	if err := ep.SendBreakIn(); err != nil {
		t.Fatal(err)
	}
	_ = vm.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := vm.Read(b[:]); err != nil || b[0] != kd.BreakInByte {
		t.Fatalf("target read %x, %v; want the break-in byte", b, err)
	}
}

// TestOpenKDNET checks that Open serves a net: target as a KDNET host on
// the target's port, that a KDNET target reaches it, and that the
// allow-list is asked first.
func TestOpenKDNET(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg := target(t, "net:port=1,key=1.2.3.4")
	if _, err := Open(ctx, tg, nil, Options{KDNETBindHost: "127.0.0.1"}); !errors.As(err, new(*NotAllowedError)) || !strings.Contains(err.Error(), "-allow 'net:1'") {
		t.Fatalf("Open(net, default allow-list) = %v, want a refusal naming -allow 'net:1'", err)
	}

	port := testkit.FreeUDPPort(t)
	allow := mustAllow(t, []string{"net:*"}, false)
	ep, err := Open(ctx, target(t, "net:port="+strconv.Itoa(port)+",key=1.2.3.4"), allow,
		Options{KDNETBindHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if _, ok := ep.(*kdnet.Link); !ok || ep.Role() != kd.RoleHost {
		t.Fatalf("Open(net) = %T, want a host-role KDNET endpoint", ep)
	}
	key, err := kdnet.ParseKey("1.2.3.4")
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := kdnet.DialTarget(ctx, kdnet.TargetConfig{
		Config: kdnet.Config{Key: key},
		Host:   "127.0.0.1:" + strconv.Itoa(port),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	print := kd.NewPrintString([]byte("hello\n"))
	if err := tgt.Send(ctx, kd.TypeDebugIO, print.Append(nil)); err != nil {
		t.Fatalf("target send: %v", err)
	}
	for {
		m, err := ep.Recv(ctx)
		if err != nil {
			t.Fatalf("host recv: %v", err)
		}
		if m.Kind == kd.MsgPacket {
			if m.Packet.Type != kd.TypeDebugIO {
				t.Fatalf("host got %s, want the target's DEBUG_IO", m.Packet.Type)
			}
			return
		}
	}
}
