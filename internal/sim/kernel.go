package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"kdsrv/internal/kd"
)

// The KDCOM kernel of a simulated machine models what a Windows kernel's
// KDCOM transport does (kd-protocol.md §1.4–1.7, ReactOS kddll and
// Microsoft BdLib):
//
//   - The machine has one serial port and one KD state: the id it sends
//     next, the id it expects next, whether a debugger is present, where
//     it is stopped. Debugger connections are cables plugged into the
//     port; they come and go, the state stays.
//   - While it runs, the kernel only polls for the break-in byte: every
//     other byte, a RESET included, is consumed and ignored (unless
//     Config.AnswerResetWhileRunning). A DbgPrint has a retry budget;
//     when it runs out the kernel decides no debugger is present and
//     restarts its id streams.
//   - While it is stopped it sends its state change (retried forever),
//     then serves manipulate requests one by one: data packets are ACKed
//     with the id as received, a duplicate id is ACKed and ignored, an id
//     other than 0x80800000/0x80800001 or a corrupt packet gets RESEND,
//     a packet of another type is ACKed and ignored, and a RESEND, a
//     RESET or a lone break-in byte make it send the state change again.
//   - Only a RESET received while stopped (both streams restart at
//     0x80800000) or a boot (the first packet carries the sync bit)
//     restarts the id streams.

var (
	// errRebooted unwinds the kernel when the machine reboots.
	errRebooted = errors.New("sim: the machine rebooted")
	// errTimeout: nothing arrived within the time-out.
	errTimeout = errors.New("sim: receive time-out")
	// errNotPresent: a packet with a retry budget was never acknowledged.
	errNotPresent = errors.New("sim: no debugger acknowledged the packet")
	// errResendStateChange: the debugger asked (RESEND, RESET, break-in)
	// for the state change again.
	errResendStateChange = errors.New("sim: the debugger asked for the state change again")
)

// portWriteTimeout bounds one write on the serial port: a debugger that
// stops reading loses its connection, not the kernel.
const portWriteTimeout = 5 * time.Second

// portReaderGrace bounds how long unplugging waits for the connection's
// reader after closing it (a blocking descriptor may not be interrupted).
const portReaderGrace = 2 * time.Second

// serialPort is the machine's UART. At most one connection is plugged in;
// without one, what the kernel writes is lost and nothing arrives.
type serialPort struct {
	mu   sync.Mutex
	conn io.ReadWriteCloser
	rx   chan []byte // received bytes, from the connection's reader
}

func newSerialPort() *serialPort { return &serialPort{rx: make(chan []byte, 8)} }

// plug connects conn. dead is closed when conn fails (the debugger went
// away); unplug disconnects it, closes it and waits for its reader.
func (p *serialPort) plug(conn io.ReadWriteCloser) (dead <-chan struct{}, unplug func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	p.mu.Lock()
	p.conn = conn
	p.mu.Unlock()
	go func() {
		defer close(done)
		for {
			b := make([]byte, 4096)
			n, err := conn.Read(b)
			if n > 0 {
				select {
				case p.rx <- b[:n]:
				case <-quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	unplug = func() {
		p.mu.Lock()
		if p.conn == conn {
			p.conn = nil
		}
		p.mu.Unlock()
		close(quit)
		_ = conn.Close()
		t := time.NewTimer(portReaderGrace)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		// What the departed debugger sent and the kernel did not read yet
		// is gone with it.
		for {
			select {
			case <-p.rx:
			default:
				return
			}
		}
	}
	return done, unplug
}

// write sends b to whatever is plugged in.
func (p *serialPort) write(b []byte) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c == nil {
		return // no cable: the bytes are lost, as on a real line
	}
	if wd, ok := c.(writeDeadliner); ok {
		_ = wd.SetWriteDeadline(time.Now().Add(portWriteTimeout))
	}
	if _, err := c.Write(b); err != nil {
		_ = c.Close() // its reader fails next, which ends the connection
	}
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// powerState runs the kernel goroutine while at least one holder (an
// debug port, or a Serve call) keeps the machine on.
type powerState struct {
	mu      sync.Mutex
	holders int
	cancel  context.CancelFunc
	done    chan struct{}
}

// hold keeps the machine's kernel running until release is called.
func (m *Machine) hold() (release func()) {
	p := &m.power
	p.mu.Lock()
	if p.holders == 0 {
		if p.done != nil {
			<-p.done // the previous run, already cancelled
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		p.cancel, p.done = cancel, done
		go func() {
			defer close(done)
			m.runKernel(ctx)
		}()
	}
	p.holders++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.holders--
			if p.holders > 0 {
				p.mu.Unlock()
				return
			}
			p.cancel()
			done := p.done
			p.mu.Unlock()
			<-done
		})
	}
}

// serveStrict plugs conn into the machine's serial port until conn fails
// or ctx ends.
func (m *Machine) serveStrict(ctx context.Context, conn io.ReadWriteCloser) error {
	release := m.hold()
	defer release()
	m.serveMu.Lock()
	defer m.serveMu.Unlock()
	m.mu.Lock()
	m.stats.Connections++
	m.mu.Unlock()
	dead, unplug := m.port.plug(conn)
	defer unplug()
	// Console text (Config.Console, ConsoleEvery) goes out through the
	// port, whose every write is one whole packet or one piece of text.
	stopConsole := m.startConsole(ctx, func(b []byte) error { m.port.write(b); return nil })
	defer stopConsole()
	select {
	case <-dead:
	case <-ctx.Done():
	}
	return nil
}

// kdcomState is the kernel's KD transport state. Only the kernel
// goroutine uses it (one at a time, see hold); it outlives connections
// and power cycles of the simulation, and is restarted by a boot.
type kdcomState struct {
	boot     uint64 // the boot these ids belong to
	sendID   uint32
	expectID uint32
	present  bool // a debugger answered (KdDebuggerNotPresent cleared)
	dec      kd.Decoder
	noise    uint64 // dec.Discarded already counted
	// breakPending: a break-in byte arrived while a packet was being
	// sent; the kernel stops once the send is over.
	breakPending bool
	// reply is a manipulate reply being sent: if the simulation stops the
	// kernel before the debugger acknowledged it, the kernel sends it
	// again (same id) when it runs again, as a kernel that never stopped
	// would still be retrying it.
	reply []byte
}

// kernel is one run of the kernel goroutine.
type kernel struct {
	m   *Machine
	s   *kdcomState
	cfg Config
	end <-chan struct{} // closed when the current boot ends
}

// runKernel runs the machine's kernel until ctx ends (power off).
func (m *Machine) runKernel(ctx context.Context) {
	k := &kernel{m: m, s: &m.kdcom, cfg: m.cfg}
	for ctx.Err() == nil {
		_ = k.runBoot(ctx) // errRebooted: start the new boot; otherwise ctx ended
	}
}

// runBoot runs one boot until the machine reboots or ctx ends.
func (k *kernel) runBoot(ctx context.Context) error {
	boot, end := k.m.bootDone()
	k.end = end
	if k.s.boot != boot {
		// A boot: the first packet goes out as 0x80800800 (INITIAL|SYNC).
		rebooted := k.s.boot != 0
		*k.s = kdcomState{boot: boot, sendID: kd.InitialPacketID | kd.SyncPacketID, expectID: kd.InitialPacketID, present: true}
		if rebooted && !k.m.Halted() {
			// A kernel that boots with a debugger attached says so (Windows
			// reports its image load): a rebooted machine announces the new
			// boot with a DbgPrint, its first packet, with the sync bit.
			if err := k.announce(ctx, boot); err != nil {
				return err
			}
		}
	}
	for {
		var err error
		if k.m.Halted() {
			err = k.stopped(ctx)
		} else {
			err = k.running(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// count updates the link counters.
func (k *kernel) count(f func(s *kd.Stats)) {
	k.m.mu.Lock()
	f(&k.m.linkSum)
	k.m.mu.Unlock()
}

// frame returns the next frame from the line, or errTimeout if none
// completes within d. A packet that stops mid-way is returned as
// FrameCorrupt when its header was complete.
func (k *kernel) frame(ctx context.Context, d time.Duration) (kd.Frame, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		f, ok := k.s.dec.Next()
		if n := k.s.dec.Discarded; n > k.s.noise {
			k.count(func(s *kd.Stats) { s.NoiseBytes += n - k.s.noise })
			k.s.noise = n
		}
		if ok {
			return f, nil
		}
		// A reboot ends this boot's kernel before it looks at another
		// byte: what arrives now is for the new boot.
		select {
		case <-k.end:
			return kd.Frame{}, errRebooted
		default:
		}
		// The time-out runs from the last byte, as in a UART poll loop.
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case b := <-k.m.port.rx:
			k.s.dec.Feed(b)
		case <-timer.C:
			if k.s.dec.MidPacket() {
				if f, ok := k.s.dec.Abort(); ok {
					return f, nil
				}
				continue
			}
			return kd.Frame{}, errTimeout
		case <-ctx.Done():
			return kd.Frame{}, ctx.Err()
		case <-k.end:
			return kd.Frame{}, errRebooted
		}
	}
}

// packet returns the next packet from the debugger while the kernel is in
// KdReceivePacket or KdSendPacket, or errTimeout after AckTimeout of
// silence. A break-in byte on the way is counted and reported to
// onBreakIn; a corrupt packet is counted and answered with RESEND.
func (k *kernel) packet(ctx context.Context, onBreakIn func()) (kd.Packet, error) {
	for {
		f, err := k.frame(ctx, k.cfg.AckTimeout)
		if err != nil {
			return kd.Packet{}, err
		}
		switch f.Kind {
		case kd.FrameBreakIn:
			k.count(func(s *kd.Stats) { s.BreakInsRecv++ })
			onBreakIn()
		case kd.FrameCorrupt:
			k.resendCorrupt()
		default:
			return f.Packet, nil
		}
	}
}

// resendCorrupt answers a packet that arrived damaged (or with an id no
// host uses) with RESEND.
func (k *kernel) resendCorrupt() {
	k.count(func(s *kd.Stats) { s.Corrupt++; s.ResendsSent++ })
	k.control(kd.TypeResend, 0)
}

// control writes a control packet.
func (k *kernel) control(t kd.PacketType, id uint32) {
	k.m.port.write(kd.AppendControl(nil, t, id))
}

// resetStreams handles a RESET: both id streams restart at 0x80800000 and
// the kernel answers RESET (id 0).
func (k *kernel) resetStreams() {
	k.s.sendID, k.s.expectID = kd.InitialPacketID, kd.InitialPacketID
	k.count(func(s *kd.Stats) { s.ResetsReceived++; s.ResetsSent++ })
	k.control(kd.TypeReset, 0)
}

// validHostID reports whether id is one a host may use (BdLib compares
// without masking: anything else is a corrupted header).
func validHostID(id uint32) bool { return id == kd.InitialPacketID || id == kd.InitialPacketID|1 }

// running polls for a break-in while the machine runs, and prints now and
// then. It returns nil once the machine stopped.
func (k *kernel) running(ctx context.Context) error {
	// Bytes that came while the kernel was stopped or sending and that it
	// has not looked at yet wait in the UART for its break-in poll: a
	// break-in among them (one that came right behind the ACK the kernel
	// was waiting for, say) stops it. Only a packet it was half-way
	// through receiving is abandoned.
	if k.s.dec.MidPacket() {
		k.s.dec.Abort()
	}
	next := time.Now().Add(k.cfg.PrintEvery)
	for {
		if k.s.breakPending {
			k.s.breakPending = false
			k.breakIn()
			return nil
		}
		d := time.Hour
		if k.cfg.PrintEvery > 0 {
			d = time.Until(next)
			if d <= 0 {
				next = time.Now().Add(k.cfg.PrintEvery)
				if err := k.tick(ctx); err != nil {
					return err
				}
				continue
			}
		}
		f, err := k.frame(ctx, d)
		if errors.Is(err, errTimeout) {
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case f.Kind == kd.FrameBreakIn:
			k.count(func(s *kd.Stats) { s.BreakInsRecv++ })
			k.breakIn()
			return nil
		case f.Kind == kd.FramePacket && f.Packet.Type == kd.TypeReset && k.cfg.AnswerResetWhileRunning:
			k.resetStreams()
		default:
			// A running kernel does not parse packets: consumed, lost.
			k.count(func(s *kd.Stats) { s.Dropped++ })
		}
	}
}

// breakIn stops the machine at the break-in breakpoint.
func (k *kernel) breakIn() {
	k.s.present = true
	k.m.breakIn()
}

func (m *Machine) breakIn() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted {
		return
	}
	m.halted = true
	m.scAcked = false
	m.exc = kd.StatusBreakpoint
	m.cpu = 0
	for i := range m.ctxs {
		m.ctxs[i].Rip = m.layout.BreakAddress
	}
}

// announce prints the boot banner (retried within the DbgPrint budget).
func (k *kernel) announce(ctx context.Context, boot uint64) error {
	return k.print(ctx, fmt.Sprintf("kdtarget: boot %d, kernel at %#x\n", boot, k.m.Layout().KernBase))
}

// tick prints a line while running, if a debugger is present.
func (k *kernel) tick(ctx context.Context) error {
	if !k.s.present {
		return nil
	}
	return k.print(ctx, k.m.tickLine())
}

// print sends a DbgPrint line within the print budget and counts it once
// a debugger took it. With no debugger present the line is lost, as a
// kernel's is: that is no error.
func (k *kernel) print(ctx context.Context, line string) error {
	d := kd.NewPrintString([]byte(line))
	err := k.send(ctx, kd.TypeDebugIO, d.Append(nil), k.cfg.PrintRetries)
	if errors.Is(err, errNotPresent) {
		return nil
	}
	if err == nil {
		k.m.printed()
	}
	return err
}

// stopped is the kernel in the debugger (KdpSendWaitContinue): report the
// stop, then serve requests until a Continue. It returns nil once the
// machine runs again.
func (k *kernel) stopped(ctx context.Context) error {
	m := k.m
	m.mu.Lock()
	resend := !m.scAcked
	m.mu.Unlock()
	if k.s.reply != nil && !resend {
		if err := k.send(ctx, kd.TypeStateManipulate, k.s.reply, 0); err != nil {
			return err
		}
		k.s.reply = nil
	}
	for {
		if resend {
			if err := k.sendStateChange(ctx); err != nil {
				return err
			}
			resend = false
		}
		// A break-in that arrived while sending is moot: we are stopped.
		k.s.breakPending = false
		p, err := k.receive(ctx)
		switch {
		case errors.Is(err, errResendStateChange):
			resend = true
			continue
		case errors.Is(err, errTimeout):
			continue
		case err != nil:
			return err
		}
		req, err := kd.DecodeManipulate(p.Payload)
		if err != nil {
			continue // acknowledged, not understood: wait for the next one
		}
		rep, next := m.execute(req)
		switch next {
		case sendReply:
			k.s.reply = rep.Append(nil)
			if err := k.send(ctx, kd.TypeStateManipulate, k.s.reply, 0); err != nil {
				return err
			}
			k.s.reply = nil
		case resumed:
			if !m.Halted() {
				return nil
			}
			resend = true // a single step stops again at once
		case reportNewState:
			resend = true
		case rebooting:
			m.Reboot()
			return errRebooted
		}
	}
}

// sendStateChange reports the current stop (retried until acknowledged).
func (k *kernel) sendStateChange(ctx context.Context) error {
	sc := k.m.stateChange()
	if err := k.send(ctx, kd.TypeStateChange64, sc.Append(nil), 0); err != nil {
		return err
	}
	k.m.mu.Lock()
	if k.m.boot == k.s.boot { // not a stop of a boot that is gone
		k.m.scAcked = true
	}
	k.m.stats.StateChanges++
	k.m.mu.Unlock()
	return nil
}

// receive waits for the next manipulate request while stopped
// (KdReceivePacket). It returns errResendStateChange when the debugger
// asks for the stop again, and errTimeout now and then while nothing
// arrives.
func (k *kernel) receive(ctx context.Context) (kd.Packet, error) {
	breakIn := false
	for {
		p, err := k.packet(ctx, func() { breakIn = true })
		if errors.Is(err, errTimeout) {
			if breakIn {
				// A break-in and then silence: the debugger wants to
				// know where we are (ReactOS returns RESEND).
				return kd.Packet{}, errResendStateChange
			}
			return kd.Packet{}, errTimeout
		}
		if err != nil {
			return kd.Packet{}, err
		}
		switch p.Type {
		case kd.TypeResend:
			k.count(func(s *kd.Stats) { s.ResendsReceived++ })
			return kd.Packet{}, errResendStateChange
		case kd.TypeReset:
			k.resetStreams()
			return kd.Packet{}, errResendStateChange
		case kd.TypeAcknowledge:
			continue // nothing is waiting for one
		}
		if p.Type.IsControl() {
			continue
		}
		if !validHostID(p.ID) {
			k.resendCorrupt()
			continue
		}
		k.control(kd.TypeAcknowledge, p.ID)
		if p.Type != kd.TypeStateManipulate {
			continue // acknowledged and ignored: not what the kernel waits for
		}
		if p.ID != k.s.expectID {
			k.count(func(s *kd.Stats) { s.Duplicates++ })
			continue
		}
		k.s.expectID ^= 1
		k.count(func(s *kd.Stats) { s.PacketsReceived++ })
		return kd.Packet{Type: p.Type, ID: p.ID, Payload: append([]byte(nil), p.Payload...)}, nil
	}
}

// send sends one data packet and waits for its ACK (KdSendPacket),
// retransmitting on time-out, RESEND and RESET. retries > 0 is a budget
// of time-outs (any packet from the debugger refills it); when it runs
// out the kernel assumes no debugger and restarts its streams. retries 0
// retries forever, as the kernel does for state changes and replies.
func (k *kernel) send(ctx context.Context, typ kd.PacketType, payload []byte, retries int) error {
	pkt := kd.Packet{Type: typ, ID: k.s.sendID, Payload: payload}
	var buf []byte
	transmit := func() {
		pkt.ID = k.s.sendID
		buf = kd.AppendPacket(buf[:0], pkt)
		k.m.port.write(buf)
	}
	transmit()
	k.count(func(s *kd.Stats) { s.PacketsSent++ })
	tries := 0
	for {
		p, err := k.packet(ctx, func() { k.s.breakPending = true })
		if errors.Is(err, errTimeout) {
			tries++
			if retries > 0 && tries > retries {
				k.s.sendID, k.s.expectID = kd.InitialPacketID|kd.SyncPacketID, kd.InitialPacketID
				k.s.present = false
				return errNotPresent
			}
			k.count(func(s *kd.Stats) { s.Retransmits++ })
			transmit()
			continue
		}
		if err != nil {
			return err
		}
		tries = 0 // a debugger is there: the budget starts again
		switch p.Type {
		case kd.TypeAcknowledge:
			if p.ID == k.s.sendID&^kd.SyncPacketID {
				k.s.sendID = (k.s.sendID ^ 1) &^ kd.SyncPacketID
				k.s.present = true
				return nil
			}
			continue
		case kd.TypeResend:
			k.count(func(s *kd.Stats) { s.ResendsReceived++; s.Retransmits++ })
			transmit()
			continue
		case kd.TypeReset:
			k.resetStreams()
			k.count(func(s *kd.Stats) { s.Retransmits++ })
			transmit() // the same packet, on the restarted stream
			continue
		}
		if p.Type.IsControl() {
			continue
		}
		// A data packet while waiting for an ACK: the debugger moved on,
		// so our ACK was lost. BdLib: if it is the one expected, ask for
		// it again and take our packet as acknowledged.
		switch {
		case !validHostID(p.ID):
			k.resendCorrupt()
		case p.ID == k.s.expectID:
			k.count(func(s *kd.Stats) { s.ResendsSent++ })
			k.control(kd.TypeResend, 0)
			k.s.sendID = (k.s.sendID ^ 1) &^ kd.SyncPacketID
			return nil
		default:
			k.count(func(s *kd.Stats) { s.Duplicates++ })
			k.control(kd.TypeAcknowledge, p.ID)
		}
	}
}
