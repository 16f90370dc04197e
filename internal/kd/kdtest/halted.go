// Package kdtest plays simple KD peers for tests of the packages above kd
// (as net/http/httptest does for net/http): a halted kernel that reports
// one state change and answers manipulate requests, without the whole
// simulated machine of internal/sim.
package kdtest

import (
	"bytes"
	"context"

	"kdsrv/internal/kd"
)

// ServeHalted plays a halted kernel on the target end l: it reports
// stateChange (an encoded STATE_CHANGE64 payload), reports it again
// whenever the host breaks in, resets or asks for a resend while nothing
// is pending, and passes each manipulate request to answer, sending back
// the reply answer returns (nothing when ok is false, as for Continue).
// Other packets are ignored. It returns when ctx ends or the link fails.
func ServeHalted(ctx context.Context, l kd.Endpoint, stateChange []byte, answer func(req kd.Manipulate) (rep kd.Manipulate, ok bool)) {
	if l.Send(ctx, kd.TypeStateChange64, stateChange) != nil {
		return
	}
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case kd.MsgBreakIn, kd.MsgReset, kd.MsgResend:
			if l.Send(ctx, kd.TypeStateChange64, stateChange) != nil {
				return
			}
			continue
		case kd.MsgPacket:
		default:
			continue
		}
		req, err := kd.DecodeManipulate(m.Packet.Payload)
		if m.Packet.Type != kd.TypeStateManipulate || err != nil {
			continue
		}
		if rep, ok := answer(req); ok && l.Send(ctx, kd.TypeStateManipulate, rep.Append(nil)) != nil {
			return
		}
	}
}

// Breakpoint returns the state change of a one-processor x64 kernel
// stopped at a first-chance breakpoint (0x80000003) at pc.
func Breakpoint(pc uint64) kd.StateChange {
	return kd.StateChange{NewState: kd.StateException, NumberProcessors: 1, ProgramCounter: pc,
		Exception: kd.ExceptionRecord64{ExceptionCode: kd.StatusBreakpoint, ExceptionAddress: pc, FirstChance: 1}}
}

// Reply answers req as a small halted kernel does: GetVersion with v,
// ReadVirtualMemory with Count bytes of 0xCC, WriteVirtualMemory as fully
// written; anything else fails with STATUS_UNSUCCESSFUL.
func Reply(req kd.Manipulate, v kd.Version) kd.Manipulate {
	switch req.API {
	case kd.APIGetVersion:
		rep := req.Reply(kd.StatusSuccess, nil)
		rep.SetVersion(v)
		return rep
	case kd.APIReadVirtualMemory:
		a := req.Memory()
		rep := req.Reply(kd.StatusSuccess, bytes.Repeat([]byte{0xcc}, int(a.Count)))
		a.Actual = a.Count
		rep.SetMemory(a)
		return rep
	case kd.APIWriteVirtualMemory:
		a := req.Memory()
		a.Actual = uint32(len(req.Extra))
		rep := req.Reply(kd.StatusSuccess, nil)
		rep.SetMemory(a)
		return rep
	}
	return req.Reply(kd.StatusUnsuccessful, nil)
}
