package sim

import (
	"context"
	"encoding/binary"

	"kdsrv/internal/kd"
)

// maxBreakpoints is the size of the target's breakpoint table.
const maxBreakpoints = 32

// afterRequest is what the kernel does once a request was executed.
type afterRequest uint8

const (
	sendReply      afterRequest = iota // send the reply, wait for the next request
	resumed                            // Continue: run (or stop again at once after a single step)
	reportNewState                     // SwitchProcessor: the selected CPU reports a state change
	rebooting                          // Reboot: no reply; the machine restarts
)

// execute runs one DBGKD_MANIPULATE_STATE64 request on the halted machine
// and says what follows; rep is the reply for sendReply.
func (t *Target) execute(req kd.Manipulate) (rep kd.Manipulate, next afterRequest) {
	t.mu.Lock()
	t.stats.Requests++
	t.mu.Unlock()
	mem, phys := t.memories()
	switch req.API {
	case kd.APIGetVersion:
		rep = req.Reply(kd.StatusSuccess, nil)
		rep.SetVersion(t.version())
	case kd.APIReadVirtualMemory:
		rep = readMemory(mem, req)
	case kd.APIWriteVirtualMemory:
		rep = writeMemory(mem, req)
	case kd.APIReadPhysicalMemory:
		rep = readMemory(phys, req)
	case kd.APIWritePhysicalMemory:
		rep = writeMemory(phys, req)
	case kd.APIGetContext:
		rep = t.getContext(req)
	case kd.APISetContext:
		rep = t.setContext(req)
	case kd.APIGetContextEx:
		rep = t.getContextEx(req)
	case kd.APISetContextEx:
		rep = t.setContextEx(req)
	case kd.APIWriteBreakPoint:
		rep = t.writeBreakPoint(req)
	case kd.APIRestoreBreakPoint:
		rep = t.restoreBreakPoint(req)
	case kd.APIReadControlSpace:
		rep = t.readControlSpace(req)
	case kd.APIWriteControlSpace:
		rep = t.writeControlSpace(req)
	case kd.APIReadMachineSpecificRegister:
		rep = t.readMSR(req)
	case kd.APIWriteMachineSpecificRegister:
		rep = t.writeMSR(req)
	case kd.APIQueryMemory:
		rep = t.queryMemory(req)
	case kd.APIClearAllInternalBreakpoints:
		rep = req.Reply(kd.StatusSuccess, nil)
	case kd.APIContinue:
		t.resume(kd.Continue2Args{ContinueStatus: req.ContinueStatus()})
		return rep, resumed
	case kd.APIContinue2:
		t.resume(req.Continue2())
		return rep, resumed
	case kd.APISwitchProcessor:
		t.mu.Lock()
		if int(req.Processor) < t.cfg.Processors {
			t.cpu = req.Processor
		}
		t.mu.Unlock()
		return rep, reportNewState
	case kd.APIReboot:
		return rep, rebooting
	default:
		t.mu.Lock()
		t.stats.UnsupportedCalls++
		t.mu.Unlock()
		rep = req.Reply(kd.StatusUnsuccessful, nil)
	}
	return rep, sendReply
}

// manipulate handles one request for the forgiving per-connection link
// (and KDNET endpoints).
func (c *debuggerConn) manipulate(ctx context.Context, req kd.Manipulate) error {
	rep, next := c.t.execute(req)
	switch next {
	case resumed:
		return c.afterContinue(ctx)
	case reportNewState:
		return c.sendStateChange(ctx)
	case rebooting:
		c.t.Reboot()
		return errRebooted
	}
	return c.l.Send(ctx, kd.TypeStateManipulate, rep.Append(nil))
}

// afterContinue: a single step stops again at once; otherwise the target
// runs until the next break-in.
func (c *debuggerConn) afterContinue(ctx context.Context) error {
	if c.t.Halted() {
		return c.sendStateChange(ctx)
	}
	return nil
}

// resume applies a Continue/Continue2 control set.
func (t *Target) resume(a kd.Continue2Args) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.ctxs {
		if a.Dr7 != 0 {
			t.ctxs[i].Dr7 = a.Dr7
		}
	}
	if a.TraceFlag != 0 {
		// Single step: "execute" one instruction and stop again.
		t.ctxs[t.cpu].Rip++
		t.exc = kd.StatusSingleStep
		t.halted = true
		t.scAcked = false
		return
	}
	t.halted = false
	t.scAcked = false
	for i := range t.ctxs {
		t.ctxs[i].Rip = t.layout.IdleAddress
	}
}

func (t *Target) version() kd.Version {
	lo := t.Layout()
	return kd.Version{
		MajorVersion:       0x000F, // NT, free build
		MinorVersion:       t.cfg.Build,
		ProtocolVersion:    kd.ProtocolVersion2,
		KdSecondaryVersion: 2,
		Flags:              kd.VersionFlagMP | kd.VersionFlagData | kd.VersionFlagPtr64,
		MachineType:        kd.MachineAMD64,
		MaxPacketType:      uint8(kd.TypeMax),
		MaxStateChange:     3,
		MaxManipulate:      0x31,
		KernBase:           lo.KernBase,
		PsLoadedModuleList: lo.PsLoadedModuleList,
		DebuggerDataList:   lo.DebuggerDataList,
	}
}

func readMemory(m *Memory, req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	n := min(a.Count, kd.MaxManipulateData)
	buf := make([]byte, n)
	got := m.Read(a.Address, buf)
	status := kd.StatusSuccess
	if got == 0 && n > 0 {
		status = kd.StatusUnsuccessful
	}
	rep := req.Reply(status, buf[:got])
	a.Actual = uint32(got)
	rep.SetMemory(a)
	return rep
}

func writeMemory(m *Memory, req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	data := req.Extra[:min(int(a.Count), len(req.Extra))]
	got := m.Write(a.Address, data)
	status := kd.StatusSuccess
	if got == 0 && len(data) > 0 {
		status = kd.StatusUnsuccessful
	}
	rep := req.Reply(status, nil)
	a.Actual = uint32(got)
	rep.SetMemory(a)
	return rep
}

func (t *Target) cpuOK(req kd.Manipulate) bool { return int(req.Processor) < t.cfg.Processors }

func (t *Target) getContext(req kd.Manipulate) kd.Manipulate {
	if !t.cpuOK(req) {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	t.mu.Lock()
	b := t.ctxs[req.Processor].Encode()
	t.mu.Unlock()
	return req.Reply(kd.StatusSuccess, b)
}

func (t *Target) setContext(req kd.Manipulate) kd.Manipulate {
	if !t.cpuOK(req) || len(req.Extra) < kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	c, err := kd.DecodeContextX64(req.Extra)
	if err != nil {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	t.mu.Lock()
	t.ctxs[req.Processor] = c
	t.mu.Unlock()
	return req.Reply(kd.StatusSuccess, nil)
}

func (t *Target) getContextEx(req kd.Manipulate) kd.Manipulate {
	a := req.ContextEx()
	if !t.cpuOK(req) || a.Offset >= kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	t.mu.Lock()
	b := t.ctxs[req.Processor].Encode()
	t.mu.Unlock()
	end := min(uint64(a.Offset)+uint64(a.ByteCount), kd.ContextX64Size, uint64(a.Offset)+kd.MaxManipulateData)
	slice := b[a.Offset:end]
	rep := req.Reply(kd.StatusSuccess, slice)
	a.BytesCopied = uint32(len(slice))
	rep.SetContextEx(a)
	return rep
}

func (t *Target) setContextEx(req kd.Manipulate) kd.Manipulate {
	a := req.ContextEx()
	if !t.cpuOK(req) || a.Offset >= kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	n := min(int(a.ByteCount), len(req.Extra), kd.ContextX64Size-int(a.Offset))
	t.mu.Lock()
	b := t.ctxs[req.Processor].Encode()
	copy(b[a.Offset:], req.Extra[:n])
	c, err := kd.DecodeContextX64(b)
	if err == nil {
		t.ctxs[req.Processor] = c
	}
	t.mu.Unlock()
	rep := req.Reply(kd.StatusSuccess, nil)
	a.BytesCopied = uint32(n)
	rep.SetContextEx(a)
	return rep
}

func (t *Target) writeBreakPoint(req kd.Manipulate) kd.Manipulate {
	a := req.BreakPoint()
	var orig [1]byte
	mem, _ := t.memories()
	if mem.Read(a.Address, orig[:]) != 1 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.bps) >= maxBreakpoints {
		a.Handle = 0
		rep := req.Reply(kd.StatusUnsuccessful, nil)
		rep.SetBreakPoint(a)
		return rep
	}
	if t.mem != mem {
		return req.Reply(kd.StatusUnsuccessful, nil) // rebooted meanwhile
	}
	if t.mem.write(a.Address, []byte{0xcc}, true) != 1 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	h := t.nextBP
	t.nextBP++
	t.bps[h] = breakpoint{addr: a.Address, orig: orig[0]}
	a.Handle = h
	rep := req.Reply(kd.StatusSuccess, nil)
	rep.SetBreakPoint(a)
	return rep
}

func (t *Target) restoreBreakPoint(req kd.Manipulate) kd.Manipulate {
	h := req.RestoreHandle()
	t.mu.Lock()
	defer t.mu.Unlock()
	bp, ok := t.bps[h]
	if !ok {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	delete(t.bps, h)
	t.mem.write(bp.addr, []byte{bp.orig}, true)
	return req.Reply(kd.StatusSuccess, nil)
}

// Breakpoints returns the addresses of the breakpoints set, by handle.
func (t *Target) Breakpoints() map[uint32]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint32]uint64, len(t.bps))
	for h, bp := range t.bps {
		out[h] = bp.addr
	}
	return out
}

// Control space on AMD64: the "address" is an index (docs/kd-protocol.md §3.2).
func (t *Target) readControlSpace(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	if !t.cpuOK(req) {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	cpu := int(req.Processor)
	var data []byte
	switch a.Address {
	case 0:
		data = binary.LittleEndian.AppendUint64(nil, KPCRBase+uint64(cpu)*KPCRStride)
	case 1:
		data = binary.LittleEndian.AppendUint64(nil, KPCRBase+uint64(cpu)*KPCRStride+KPRCBOffset)
	case 2:
		t.mu.Lock()
		data = append([]byte(nil), t.special[cpu]...)
		t.mu.Unlock()
	case 3:
		data = binary.LittleEndian.AppendUint64(nil, t.thread(cpu))
	default:
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	n := min(int(a.Count), len(data), kd.MaxManipulateData)
	rep := req.Reply(kd.StatusSuccess, data[:n])
	a.Actual = uint32(n)
	rep.SetMemory(a)
	return rep
}

func (t *Target) writeControlSpace(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	if !t.cpuOK(req) || a.Address != 2 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	t.mu.Lock()
	n := copy(t.special[req.Processor], req.Extra[:min(int(a.Count), len(req.Extra))])
	t.mu.Unlock()
	rep := req.Reply(kd.StatusSuccess, nil)
	a.Actual = uint32(n)
	rep.SetMemory(a)
	return rep
}

func (t *Target) readMSR(req kd.Manipulate) kd.Manipulate {
	a := req.MSR()
	t.mu.Lock()
	v, ok := t.msrs[a.MSR]
	t.mu.Unlock()
	if !ok {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	rep := req.Reply(kd.StatusSuccess, nil)
	a.Low, a.High = uint32(v), uint32(v>>32)
	rep.SetMSR(a)
	return rep
}

func (t *Target) writeMSR(req kd.Manipulate) kd.Manipulate {
	a := req.MSR()
	t.mu.Lock()
	t.msrs[a.MSR] = a.Value()
	t.mu.Unlock()
	return req.Reply(kd.StatusSuccess, nil)
}

func (t *Target) queryMemory(req kd.Manipulate) kd.Manipulate {
	a := req.QueryMemory()
	mem, _ := t.memories()
	lo := t.Layout()
	mapped, writable := mem.Mapped(a.Address)
	if !mapped {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	a.AddressSpace = 2 // kernel
	a.Flags = 1
	if writable {
		a.Flags |= 2
	}
	if a.Address >= lo.KernBase && a.Address < lo.KernBase+KernSize {
		a.Flags |= 4
	}
	rep := req.Reply(kd.StatusSuccess, nil)
	rep.SetQueryMemory(a)
	return rep
}
