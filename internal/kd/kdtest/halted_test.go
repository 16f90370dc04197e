package kdtest

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"kdsrv/internal/kd"
)

// TestServeHalted drives ServeHalted with kd.Host, as a debugger would:
// attach (break-in and RESET answered with the state change), GetVersion,
// memory read and write, and a request Reply does not serve.
func TestServeHalted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, z := net.Pipe()
	hostLink := kd.NewHostLink(a, kd.Config{})
	target := kd.NewTargetLink(z, kd.Config{})
	ver := kd.Version{MinorVersion: 9600, ProtocolVersion: 6, MachineType: kd.MachineAMD64, KernBase: 0xfffff80000400000}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := Breakpoint(0xfffff80000401000)
		ServeHalted(ctx, target, sc.Append(nil), func(req kd.Manipulate) (kd.Manipulate, bool) { return Reply(req, ver), true })
	}()
	defer func() {
		hostLink.Close()
		target.Close()
		<-done
	}()

	h := kd.NewHost(hostLink, kd.HostOptions{})
	sc, err := h.Attach(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Exception.ExceptionCode != kd.StatusBreakpoint || sc.ProgramCounter != 0xfffff80000401000 || sc.Exception.FirstChance != 1 {
		t.Errorf("state change %v", sc)
	}
	if got, err := h.Version(ctx); err != nil || got != ver {
		t.Errorf("Version = %+v, %v; want %+v", got, err, ver)
	}
	if b, err := h.ReadVirtual(ctx, 0xfffff80000401000, 16); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{0xcc}, 16)) {
		t.Errorf("ReadVirtual = %x, %v", b, err)
	}
	if n, err := h.WriteVirtual(ctx, 0xfffff80000402000, []byte{0x90, 0x90, 0x90}); err != nil || n != 3 {
		t.Errorf("WriteVirtual = %d, %v", n, err)
	}
	if rep, err := h.Call(ctx, kd.NewReadMSR(0, 0xC0000080)); err != nil || rep.ReturnStatus != kd.StatusUnsuccessful {
		t.Errorf("ReadMSR = %v, %v; want status STATUS_UNSUCCESSFUL, as Reply does not serve it", rep, err)
	}
	// A halted kernel answers a break-in with its state change again.
	if err := hostLink.SendBreakIn(); err != nil {
		t.Fatal(err)
	}
	if sc, err := h.WaitStateChange(ctx); err != nil || sc.ProgramCounter != 0xfffff80000401000 {
		t.Errorf("after a break-in: %v, %v", sc, err)
	}
}
