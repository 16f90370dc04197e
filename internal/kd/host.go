package kd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Host is a minimal debugger built on a host-role Link: it attaches to a
// target, waits for state changes, and issues typed manipulate calls one at
// a time. It answers what a target may ask on the way (FILE_IO gets "no
// such file", DbgPrompt gets an empty answer) so the target never stalls.
//
// Host does not start goroutines: every method runs on the caller's
// goroutine and reads the link itself. Methods must not be called
// concurrently.
type Host struct {
	link Endpoint
	opts HostOptions

	mu      sync.Mutex
	state   StateChange
	scBytes []byte // payload of the current state change
	halted  bool
	// dupSC is set when the target answered a RESET while halted: it then
	// sends its current state change again, and that copy is not news.
	dupSC bool
	// resetSent is set while a RESET we sent has not been answered.
	resetSent bool
}

// HostOptions tunes a Host.
type HostOptions struct {
	// CallTimeout is how long one manipulate call waits for its reply
	// before the request is sent again (default 3s).
	CallTimeout time.Duration
	// CallAttempts is how many times a call is sent before it fails
	// (default 3).
	CallAttempts int
	// AttachInterval is how often Attach repeats break-in and RESET while
	// waiting for the target (default 1s).
	AttachInterval time.Duration
	// OnPrint receives DbgPrint output (the string only). Optional.
	OnPrint func(cpu uint16, text []byte)
	// OnStateChange is told about every state change. Optional.
	OnStateChange func(StateChange)
}

// ErrTargetRunning is returned by calls that need a halted target.
var ErrTargetRunning = errors.New("kd: the target is running; break in first")

// ErrNoReply is returned when the target never answered a call.
var ErrNoReply = errors.New("kd: the target did not answer")

// NewHost wraps a host-role endpoint: a KDCOM link, a KDNET link, or an
// in-process one (kdclient's built-in commands on its bridge).
func NewHost(l Endpoint, opts HostOptions) *Host {
	if l.Role() != RoleHost {
		panic("kd: NewHost needs a RoleHost link")
	}
	opts.CallTimeout = orDefault(opts.CallTimeout, 3*time.Second)
	opts.CallAttempts = orDefault(opts.CallAttempts, 3)
	opts.AttachInterval = orDefault(opts.AttachInterval, time.Second)
	return &Host{link: l, opts: opts}
}

// Link returns the underlying endpoint.
func (h *Host) Link() Endpoint { return h.link }

// State returns the last state change and whether the target is halted.
func (h *Host) State() (StateChange, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state, h.halted
}

// Attach synchronises with the target the way debuggers do: break-in and
// RESET, repeated every AttachInterval, until the target reports a state
// change (it is then halted).
func (h *Host) Attach(ctx context.Context) (StateChange, error) {
	h.mu.Lock()
	h.halted, h.dupSC = false, false
	h.mu.Unlock()
	for {
		if err := h.link.SendBreakIn(); err != nil {
			return StateChange{}, err
		}
		h.mu.Lock()
		h.resetSent = true
		h.mu.Unlock()
		if err := h.link.SendReset(); err != nil {
			return StateChange{}, err
		}
		wctx, cancel := context.WithTimeout(ctx, h.opts.AttachInterval)
		sc, err := h.WaitStateChange(wctx)
		if err == nil {
			// Take the answer to our RESET too, so the state change a
			// halted target re-sends for it is recognised as a repeat.
			err = h.settleReset(wctx)
			cancel()
			return sc, err
		}
		cancel()
		if ctx.Err() != nil {
			return StateChange{}, fmt.Errorf("kd: no state change from the target while attaching: %w", ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return StateChange{}, err
		}
	}
}

// settleReset reads messages until the target has answered our RESET (or
// the time-out passes: some targets ignore RESET while running).
func (h *Host) settleReset(ctx context.Context) error {
	for {
		h.mu.Lock()
		pending := h.resetSent
		h.mu.Unlock()
		if !pending {
			return nil
		}
		m, err := h.link.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if _, _, err := h.handle(ctx, m); err != nil {
			return err
		}
	}
}

// WaitStateChange reads the link until the target reports a state change,
// handling prints and file requests meanwhile.
func (h *Host) WaitStateChange(ctx context.Context) (StateChange, error) {
	for {
		m, err := h.link.Recv(ctx)
		if err != nil {
			return StateChange{}, err
		}
		if sc, ok, err := h.handle(ctx, m); err != nil {
			return StateChange{}, err
		} else if ok {
			return sc, nil
		}
	}
}

// handle deals with one unsolicited message; ok reports a state change.
func (h *Host) handle(ctx context.Context, m Message) (sc StateChange, ok bool, err error) {
	switch m.Kind {
	case MsgReset:
		h.mu.Lock()
		h.dupSC = h.halted
		h.resetSent = false
		h.mu.Unlock()
	case MsgSync:
		// The target restarted its streams (it rebooted): its next state
		// change is a new stop, even one that looks like the last.
		h.mu.Lock()
		h.halted, h.dupSC = false, false
		h.mu.Unlock()
	}
	if m.Kind != MsgPacket {
		return sc, false, nil
	}
	p := m.Packet
	switch p.Type {
	case TypeStateChange64:
		sc, err := DecodeStateChange(p.Payload)
		if err != nil {
			return sc, false, nil // malformed: ignore, the target will resend
		}
		h.mu.Lock()
		if h.dupSC && bytes.Equal(p.Payload, h.scBytes) {
			// The copy a halted target re-sends after answering RESET
			// (possibly read only after we resumed it).
			h.dupSC = false
			h.mu.Unlock()
			return sc, false, nil
		}
		h.state, h.halted, h.dupSC = sc, true, false
		h.scBytes = append(h.scBytes[:0], p.Payload...)
		h.mu.Unlock()
		if h.opts.OnStateChange != nil {
			h.opts.OnStateChange(sc)
		}
		return sc, true, nil
	case TypeDebugIO:
		d, err := DecodeDebugIO(p.Payload)
		if err != nil {
			return sc, false, nil
		}
		switch d.API {
		case APIPrintString:
			if h.opts.OnPrint != nil {
				h.opts.OnPrint(d.Processor, d.Text())
			}
		case APIGetString:
			// DbgPrompt: answer with an empty string so the target goes on.
			ans := d.Answer(nil)
			return sc, false, h.link.Send(ctx, TypeDebugIO, ans.Append(nil))
		}
	case TypeFileIO:
		f, err := DecodeFileIO(p.Payload)
		if err != nil || f.API != APICreateFile {
			return sc, false, nil
		}
		r := NewFileIORefusal(APICreateFile)
		return sc, false, h.link.Send(ctx, TypeFileIO, r.Append(nil))
	}
	return sc, false, nil
}

// Call sends one manipulate request and returns the matching reply: same
// API number (and, for memory calls, same address). Replies that do not
// match are stale duplicates and are skipped. Without a reply within
// CallTimeout the request is sent again, up to CallAttempts times.
func (h *Host) Call(ctx context.Context, req Manipulate) (Manipulate, error) {
	h.mu.Lock()
	halted := h.halted
	h.mu.Unlock()
	if !halted {
		return Manipulate{}, ErrTargetRunning
	}
	payload := req.Append(nil)
	stops := 0
	for attempt := 0; attempt < h.opts.CallAttempts; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
		rep, err := h.callOnce(cctx, req, payload)
		cancel()
		if err == nil {
			return rep, nil
		}
		if ctx.Err() != nil {
			return Manipulate{}, ctx.Err()
		}
		if (errors.Is(err, errStoppedMeanwhile) || errors.Is(err, ErrPeerRestarted)) && stops < h.opts.CallAttempts {
			stops++
			attempt-- // not a time-out: send it again now, as often again at most
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errStoppedMeanwhile) && !errors.Is(err, ErrPeerRestarted) {
			return Manipulate{}, err
		}
	}
	return Manipulate{}, fmt.Errorf("%w: %v after %d attempts of %v", ErrNoReply, req.API, h.opts.CallAttempts, h.opts.CallTimeout)
}

func (h *Host) callOnce(ctx context.Context, req Manipulate, payload []byte) (Manipulate, error) {
	if err := h.link.Send(ctx, TypeStateManipulate, payload); err != nil {
		return Manipulate{}, err
	}
	for {
		m, err := h.link.Recv(ctx)
		if err != nil {
			return Manipulate{}, err
		}
		if m.Kind == MsgPacket && m.Packet.Type == TypeStateManipulate {
			rep, err := DecodeManipulate(m.Packet.Payload)
			if err == nil && Matches(req, rep) {
				return rep, nil
			}
			continue
		}
		if _, stop, err := h.handle(ctx, m); err != nil {
			return Manipulate{}, err
		} else if stop {
			return Manipulate{}, errStoppedMeanwhile
		}
	}
}

// errStoppedMeanwhile: the target reported a stop while a request waited
// for its reply, so it did not take the request. It was running when the
// request went out (it rebooted, or the request raced a break-in, or a
// kdsrv relayed it on a picture that had just gone stale), or it was
// sending that stop (again) and dropped the request meanwhile, as a kernel
// waiting for its own ACK does. The request goes again at once: were it
// taken after all, answering it twice is harmless (Call's requests read, or
// write the same bytes again), and the reply that does not match is
// skipped.
var errStoppedMeanwhile = errors.New("kd: the target reported a stop instead of the reply")

// Matches reports whether rep answers req: the same API, and for memory
// and context-slice calls the same address or offset.
func Matches(req, rep Manipulate) bool {
	if req.API != rep.API {
		return false
	}
	switch req.API {
	case APIReadVirtualMemory, APIWriteVirtualMemory, APIReadPhysicalMemory, APIWritePhysicalMemory:
		return req.Memory().Address == rep.Memory().Address
	case APIReadControlSpace, APIWriteControlSpace:
		return req.Processor == rep.Processor && req.Memory().Address == rep.Memory().Address
	case APIGetContext, APISetContext:
		return req.Processor == rep.Processor
	case APIGetContextEx, APISetContextEx:
		return req.Processor == rep.Processor && req.ContextEx().Offset == rep.ContextEx().Offset
	case APIWriteBreakPoint:
		return req.BreakPoint().Address == rep.BreakPoint().Address
	case APIRestoreBreakPoint:
		return req.RestoreHandle() == rep.RestoreHandle()
	case APIReadMachineSpecificRegister, APIWriteMachineSpecificRegister:
		return req.Processor == rep.Processor && req.MSR().MSR == rep.MSR().MSR
	}
	return true
}

// StatusError is a failing NTSTATUS returned by the target.
type StatusError struct {
	API    APINumber
	Status uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kd: the target failed %v with status 0x%08X", e.API, e.Status)
}

func statusErr(rep Manipulate) error {
	if rep.ReturnStatus&0x80000000 != 0 && rep.ReturnStatus&0xC0000000 == 0xC0000000 {
		return &StatusError{API: rep.API, Status: rep.ReturnStatus}
	}
	return nil
}

// Version asks the target for DBGKD_GET_VERSION64.
func (h *Host) Version(ctx context.Context) (Version, error) {
	rep, err := h.Call(ctx, NewGetVersion())
	if err != nil {
		return Version{}, err
	}
	if err := statusErr(rep); err != nil {
		return Version{}, err
	}
	return rep.Version(), nil
}

// Context reads the full AMD64 CONTEXT of a processor.
func (h *Host) Context(ctx context.Context, cpu uint16) (ContextX64, error) {
	rep, err := h.Call(ctx, NewGetContext(cpu))
	if err != nil {
		return ContextX64{}, err
	}
	if err := statusErr(rep); err != nil {
		return ContextX64{}, err
	}
	return DecodeContextX64(rep.Extra)
}

// SetContext writes the full AMD64 CONTEXT of a processor.
func (h *Host) SetContext(ctx context.Context, cpu uint16, c *ContextX64) error {
	rep, err := h.Call(ctx, NewSetContext(cpu, c.ContextFlags, c.Encode()))
	if err != nil {
		return err
	}
	return statusErr(rep)
}

// ReadVirtual reads n bytes at addr in chunks of at most MaxManipulateData.
// It returns what was read before the first failing or short chunk, with an
// error saying where reading stopped.
func (h *Host) ReadVirtual(ctx context.Context, addr uint64, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for len(out) < n {
		chunk := uint32(min(n-len(out), MaxManipulateData))
		a := addr + uint64(len(out))
		rep, err := h.Call(ctx, NewReadVirtual(a, chunk))
		if err != nil {
			return out, err
		}
		got := min(int(rep.Memory().Actual), len(rep.Extra), int(chunk))
		out = append(out, rep.Extra[:got]...)
		if err := statusErr(rep); err != nil || got < int(chunk) {
			return out, fmt.Errorf("kd: memory at %#x is not readable (read %d of %d bytes)", a+uint64(got), len(out), n)
		}
	}
	return out, nil
}

// WriteVirtual writes data at addr in chunks; it returns how many bytes
// were written.
func (h *Host) WriteVirtual(ctx context.Context, addr uint64, data []byte) (int, error) {
	done := 0
	for done < len(data) {
		chunk := data[done:min(len(data), done+MaxManipulateData)]
		a := addr + uint64(done)
		rep, err := h.Call(ctx, NewWriteVirtual(a, chunk))
		if err != nil {
			return done, err
		}
		got := min(int(rep.Memory().Actual), len(chunk))
		done += got
		if err := statusErr(rep); err != nil || got < len(chunk) {
			return done, fmt.Errorf("kd: memory at %#x is not writable (wrote %d of %d bytes)", a+uint64(got), done, len(data))
		}
	}
	return done, nil
}

// Break sends a break-in and waits for the resulting state change, sending
// the break-in again every AttachInterval until it comes (a break-in byte
// lost on a noisy line, or read by a kernel that was just stopping, would
// otherwise leave the debugger waiting for ever; one more break-in to a
// stopped kernel only makes it report its stop again). If the target is
// already halted it returns the current state.
func (h *Host) Break(ctx context.Context) (StateChange, error) {
	if sc, halted := h.State(); halted {
		return sc, nil
	}
	for {
		if err := h.link.SendBreakIn(); err != nil {
			return StateChange{}, err
		}
		wctx, cancel := context.WithTimeout(ctx, h.opts.AttachInterval)
		sc, err := h.WaitStateChange(wctx)
		cancel()
		if err == nil {
			return sc, nil
		}
		if ctx.Err() != nil {
			return StateChange{}, fmt.Errorf("kd: no state change from the target after a break-in: %w", ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return StateChange{}, err
		}
	}
}

// Continue resumes the target with Continue2 (DBG_CONTINUE, no tracing).
// Continue has no reply; the target runs until the next state change.
func (h *Host) Continue(ctx context.Context) error {
	return h.Resume(ctx, Continue2Args{ContinueStatus: DbgContinue, CurrentSymbolStart: 1})
}

// Resume sends Continue2 with the given control set.
func (h *Host) Resume(ctx context.Context, a Continue2Args) error {
	h.mu.Lock()
	halted := h.halted
	h.mu.Unlock()
	if !halted {
		return ErrTargetRunning
	}
	req := NewContinue2(a)
	if err := h.link.Send(ctx, TypeStateManipulate, req.Append(nil)); err != nil {
		return err
	}
	h.mu.Lock()
	h.halted = false
	h.mu.Unlock()
	return nil
}
