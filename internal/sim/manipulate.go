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
func (m *Machine) execute(req kd.Manipulate) (rep kd.Manipulate, next afterRequest) {
	m.mu.Lock()
	m.stats.Requests++
	m.mu.Unlock()
	mem, phys := m.memories()
	switch req.API {
	case kd.APIGetVersion:
		rep = req.Reply(kd.StatusSuccess, nil)
		rep.SetVersion(m.version())
	case kd.APIReadVirtualMemory:
		rep = mem.ReadReply(req)
	case kd.APIWriteVirtualMemory:
		rep = mem.writeReply(req)
	case kd.APIReadPhysicalMemory:
		rep = phys.ReadReply(req)
	case kd.APIWritePhysicalMemory:
		rep = phys.writeReply(req)
	case kd.APIGetContext:
		rep = m.getContext(req)
	case kd.APISetContext:
		rep = m.setContext(req)
	case kd.APIGetContextEx:
		rep = m.getContextEx(req)
	case kd.APISetContextEx:
		rep = m.setContextEx(req)
	case kd.APIWriteBreakPoint:
		rep = m.writeBreakPoint(req)
	case kd.APIRestoreBreakPoint:
		rep = m.restoreBreakPoint(req)
	case kd.APIReadControlSpace:
		rep = m.readControlSpace(req)
	case kd.APIWriteControlSpace:
		rep = m.writeControlSpace(req)
	case kd.APIReadMachineSpecificRegister:
		rep = m.readMSR(req)
	case kd.APIWriteMachineSpecificRegister:
		rep = m.writeMSR(req)
	case kd.APIQueryMemory:
		rep = m.queryMemory(req)
	case kd.APIClearAllInternalBreakpoints:
		rep = req.Reply(kd.StatusSuccess, nil)
	case kd.APIContinue:
		m.resume(kd.Continue2Args{ContinueStatus: req.ContinueStatus()})
		return rep, resumed
	case kd.APIContinue2:
		m.resume(req.Continue2())
		return rep, resumed
	case kd.APISwitchProcessor:
		m.mu.Lock()
		if int(req.Processor) < m.cfg.Processors {
			m.cpu = req.Processor
		}
		m.mu.Unlock()
		return rep, reportNewState
	case kd.APIReboot:
		return rep, rebooting
	default:
		m.mu.Lock()
		m.stats.UnsupportedCalls++
		m.mu.Unlock()
		rep = req.Reply(kd.StatusUnsuccessful, nil)
	}
	return rep, sendReply
}

// manipulate handles one request on a message-level link (KDNET).
func (c *debuggerConn) manipulate(ctx context.Context, req kd.Manipulate) error {
	rep, next := c.m.execute(req)
	switch next {
	case resumed:
		return c.afterContinue(ctx)
	case reportNewState:
		return c.sendStateChange(ctx)
	case rebooting:
		c.m.Reboot()
		return errRebooted
	}
	return c.l.Send(ctx, kd.TypeStateManipulate, rep.Append(nil))
}

// afterContinue: a single step stops again at once; otherwise the target
// runs until the next break-in.
func (c *debuggerConn) afterContinue(ctx context.Context) error {
	if c.m.Halted() {
		return c.sendStateChange(ctx)
	}
	return nil
}

// resume applies a Continue/Continue2 control set.
func (m *Machine) resume(a kd.Continue2Args) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ctxs {
		if a.Dr7 != 0 {
			m.ctxs[i].Dr7 = a.Dr7
		}
	}
	if a.TraceFlag != 0 {
		// Single step: "execute" one instruction and stop again.
		m.ctxs[m.cpu].Rip++
		m.exc = kd.StatusSingleStep
		m.halted = true
		m.scAcked = false
		return
	}
	m.halted = false
	m.scAcked = false
	for i := range m.ctxs {
		m.ctxs[i].Rip = m.layout.IdleAddress
	}
}

func (m *Machine) version() kd.Version {
	lo := m.Layout()
	return kd.Version{
		MajorVersion:       0x000F, // NT, free build
		MinorVersion:       m.cfg.Build,
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

// ReadReply is the reply a machine with memory m gives to a read request
// (ReadVirtualMemory, ReadPhysicalMemory): as many bytes as are mapped
// from the address on, up to one packet's worth; unsuccessful when none
// are. A test can compute the reply it expects with it.
func (m *Memory) ReadReply(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	n := min(a.Count, kd.MaxManipulateData)
	buf := make([]byte, n)
	got := m.Read(a.Address, buf)
	return memoryReply(req, a, buf[:got], got, int(n))
}

// writeReply writes what a write request carries and replies.
func (m *Memory) writeReply(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	data := req.Extra[:min(int(a.Count), len(req.Extra))]
	got := m.Write(a.Address, data)
	return memoryReply(req, a, nil, got, len(data))
}

// memoryReply is the reply to a memory-style request (memory, control
// space) that moved n of the asked bytes, data being what a read returns.
// Moving nothing when something was asked for is unsuccessful.
func memoryReply(req kd.Manipulate, a kd.MemoryArgs, data []byte, n, asked int) kd.Manipulate {
	status := kd.StatusSuccess
	if n == 0 && asked > 0 {
		status = kd.StatusUnsuccessful
	}
	rep := req.Reply(status, data)
	a.Actual = uint32(n)
	rep.SetMemory(a)
	return rep
}

func (m *Machine) cpuOK(req kd.Manipulate) bool { return int(req.Processor) < m.cfg.Processors }

func (m *Machine) getContext(req kd.Manipulate) kd.Manipulate {
	if !m.cpuOK(req) {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	m.mu.Lock()
	b := m.ctxs[req.Processor].Encode()
	m.mu.Unlock()
	return req.Reply(kd.StatusSuccess, b)
}

func (m *Machine) setContext(req kd.Manipulate) kd.Manipulate {
	if !m.cpuOK(req) || len(req.Extra) < kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	c, err := kd.DecodeContextX64(req.Extra)
	if err != nil {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	m.mu.Lock()
	m.ctxs[req.Processor] = c
	m.mu.Unlock()
	return req.Reply(kd.StatusSuccess, nil)
}

func (m *Machine) getContextEx(req kd.Manipulate) kd.Manipulate {
	a := req.ContextEx()
	if !m.cpuOK(req) || a.Offset >= kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	m.mu.Lock()
	b := m.ctxs[req.Processor].Encode()
	m.mu.Unlock()
	end := min(uint64(a.Offset)+uint64(a.ByteCount), kd.ContextX64Size, uint64(a.Offset)+kd.MaxManipulateData)
	slice := b[a.Offset:end]
	rep := req.Reply(kd.StatusSuccess, slice)
	a.BytesCopied = uint32(len(slice))
	rep.SetContextEx(a)
	return rep
}

func (m *Machine) setContextEx(req kd.Manipulate) kd.Manipulate {
	a := req.ContextEx()
	if !m.cpuOK(req) || a.Offset >= kd.ContextX64Size {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	n := min(int(a.ByteCount), len(req.Extra), kd.ContextX64Size-int(a.Offset))
	m.mu.Lock()
	b := m.ctxs[req.Processor].Encode()
	copy(b[a.Offset:], req.Extra[:n])
	c, err := kd.DecodeContextX64(b)
	if err == nil {
		m.ctxs[req.Processor] = c
	}
	m.mu.Unlock()
	rep := req.Reply(kd.StatusSuccess, nil)
	a.BytesCopied = uint32(n)
	rep.SetContextEx(a)
	return rep
}

func (m *Machine) writeBreakPoint(req kd.Manipulate) kd.Manipulate {
	a := req.BreakPoint()
	var orig [1]byte
	mem, _ := m.memories()
	if mem.Read(a.Address, orig[:]) != 1 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.bps) >= maxBreakpoints {
		a.Handle = 0
		rep := req.Reply(kd.StatusUnsuccessful, nil)
		rep.SetBreakPoint(a)
		return rep
	}
	if m.mem != mem {
		return req.Reply(kd.StatusUnsuccessful, nil) // rebooted meanwhile
	}
	if m.mem.write(a.Address, []byte{0xcc}, true) != 1 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	h := m.nextBP
	m.nextBP++
	m.bps[h] = breakpoint{addr: a.Address, orig: orig[0]}
	a.Handle = h
	rep := req.Reply(kd.StatusSuccess, nil)
	rep.SetBreakPoint(a)
	return rep
}

func (m *Machine) restoreBreakPoint(req kd.Manipulate) kd.Manipulate {
	h := req.RestoreHandle()
	m.mu.Lock()
	defer m.mu.Unlock()
	bp, ok := m.bps[h]
	if !ok {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	delete(m.bps, h)
	m.mem.write(bp.addr, []byte{bp.orig}, true)
	return req.Reply(kd.StatusSuccess, nil)
}

// Breakpoints returns the addresses of the breakpoints set, by handle.
func (m *Machine) Breakpoints() map[uint32]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint32]uint64, len(m.bps))
	for h, bp := range m.bps {
		out[h] = bp.addr
	}
	return out
}

// Control space on AMD64: the "address" is an index (docs/kd-protocol.md §3.2).
func (m *Machine) readControlSpace(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	if !m.cpuOK(req) {
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
		m.mu.Lock()
		data = append([]byte(nil), m.special[cpu]...)
		m.mu.Unlock()
	case 3:
		data = binary.LittleEndian.AppendUint64(nil, m.thread(cpu))
	default:
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	n := min(int(a.Count), len(data), kd.MaxManipulateData)
	return memoryReply(req, a, data[:n], n, n)
}

func (m *Machine) writeControlSpace(req kd.Manipulate) kd.Manipulate {
	a := req.Memory()
	if !m.cpuOK(req) || a.Address != 2 {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	m.mu.Lock()
	n := copy(m.special[req.Processor], req.Extra[:min(int(a.Count), len(req.Extra))])
	m.mu.Unlock()
	return memoryReply(req, a, nil, n, n)
}

func (m *Machine) readMSR(req kd.Manipulate) kd.Manipulate {
	a := req.MSR()
	m.mu.Lock()
	v, ok := m.msrs[a.MSR]
	m.mu.Unlock()
	if !ok {
		return req.Reply(kd.StatusUnsuccessful, nil)
	}
	rep := req.Reply(kd.StatusSuccess, nil)
	a.Low, a.High = uint32(v), uint32(v>>32)
	rep.SetMSR(a)
	return rep
}

func (m *Machine) writeMSR(req kd.Manipulate) kd.Manipulate {
	a := req.MSR()
	m.mu.Lock()
	m.msrs[a.MSR] = a.Value()
	m.mu.Unlock()
	return req.Reply(kd.StatusSuccess, nil)
}

func (m *Machine) queryMemory(req kd.Manipulate) kd.Manipulate {
	a := req.QueryMemory()
	mem, _ := m.memories()
	lo := m.Layout()
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
