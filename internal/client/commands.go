package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"kdsrv/internal/kd"
)

// Commander runs the built-in commands on a target bridged in-process.
type Commander struct {
	Host *kd.Host
	Out  io.Writer
	// Progress receives dump progress lines (nil = none).
	Progress io.Writer
	JSON     bool
	// AttachTimeout bounds waiting for the target to stop (default 10s).
	AttachTimeout time.Duration
}

// ErrNotResponding means the target never answered a break-in.
var ErrNotResponding = errors.New("the target did not answer the break-in")

// attach stops the target if needed and returns the state change.
func (c *Commander) attach(ctx context.Context) (kd.StateChange, error) {
	to := c.AttachTimeout
	if to <= 0 {
		to = 10 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	sc, err := c.Host.Attach(actx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return sc, fmt.Errorf("%w within %v: check that the target is booted with kernel debugging enabled (bcdedit /debug on), that the link settings (port, baud rate, pipe) match, and that no other debugger holds it", ErrNotResponding, to)
	}
	return sc, err
}

func (c *Commander) emit(v any, text string) error {
	if c.JSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.Out, "%s\n", b)
		return err
	}
	_, err := io.WriteString(c.Out, text)
	return err
}

func hex64(v uint64) string { return fmt.Sprintf("%016x", v) }

// Version prints the target's GET_VERSION64 data.
func (c *Commander) Version(ctx context.Context) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	v, err := c.Host.Version(ctx)
	if err != nil {
		return err
	}
	kind := "free"
	if v.MajorVersion&0xff == 0xc {
		kind = "checked"
	}
	text := fmt.Sprintf("Windows kernel build %d (%s), machine %s, KD protocol %d.%d\nKernBase %s  PsLoadedModuleList %s  DebuggerDataList %s\n",
		v.MinorVersion, kind, machineName(v.MachineType), v.ProtocolVersion, v.KdSecondaryVersion,
		hex64(v.KernBase), hex64(v.PsLoadedModuleList), hex64(v.DebuggerDataList))
	return c.emit(map[string]any{
		"build": v.MinorVersion, "major": v.MajorVersion, "machine": machineName(v.MachineType),
		"protocol": v.ProtocolVersion, "secondary": v.KdSecondaryVersion, "flags": v.Flags,
		"kern_base": hex64(v.KernBase), "ps_loaded_module_list": hex64(v.PsLoadedModuleList),
		"debugger_data_list": hex64(v.DebuggerDataList),
	}, text)
}

func machineName(m uint16) string {
	switch m {
	case kd.MachineAMD64:
		return "x64"
	case kd.MachineI386:
		return "x86"
	case kd.MachineARM64:
		return "arm64"
	case kd.MachineARM:
		return "arm"
	}
	return fmt.Sprintf("0x%04x", m)
}

// Regs prints the registers of a processor.
func (c *Commander) Regs(ctx context.Context, cpu uint16) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	cx, err := c.Host.Context(ctx, cpu)
	if err != nil {
		return err
	}
	regs := cx.Registers()
	m := make(map[string]string, len(regs))
	var b strings.Builder
	col := 0
	for _, r := range regs {
		width := r.Bits / 4
		val := fmt.Sprintf("%0*x", width, r.Value)
		m[r.Name] = val
		fmt.Fprintf(&b, "%s=%s", r.Name, val)
		col++
		if col%3 == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	if col%3 != 0 {
		b.WriteByte('\n')
	}
	return c.emit(m, b.String())
}

// Read prints n bytes at addr as a hex dump.
func (c *Commander) Read(ctx context.Context, addr uint64, n int) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	data, err := c.Host.ReadVirtual(ctx, addr, n)
	if err != nil && len(data) == 0 {
		return err
	}
	text := HexDump(addr, data)
	if jerr := c.emit(map[string]any{"address": hex64(addr), "length": len(data), "data": hex.EncodeToString(data)}, text); jerr != nil {
		return jerr
	}
	return err
}

// Write stores data at addr.
func (c *Commander) Write(ctx context.Context, addr uint64, data []byte) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	n, err := c.Host.WriteVirtual(ctx, addr, data)
	if err != nil {
		return err
	}
	return c.emit(map[string]any{"address": hex64(addr), "written": n}, fmt.Sprintf("wrote %d bytes at %s\n", n, hex64(addr)))
}

// Break stops the target and prints where.
func (c *Commander) Break(ctx context.Context) error {
	sc, err := c.attach(ctx)
	if err != nil {
		return err
	}
	return c.emitState(sc)
}

func (c *Commander) emitState(sc kd.StateChange) error {
	return c.emit(map[string]any{
		"state": kd.APINumber(sc.NewState).String(), "exception_code": fmt.Sprintf("0x%08x", sc.Exception.ExceptionCode),
		"pc": hex64(sc.ProgramCounter), "processor": sc.Processor, "processors": sc.NumberProcessors,
		"thread": hex64(sc.Thread),
	}, fmt.Sprintf("target stopped: %s\n", sc))
}

// Go resumes the target.
func (c *Commander) Go(ctx context.Context) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	if err := c.Host.Continue(ctx); err != nil {
		return err
	}
	return c.emit(map[string]any{"state": "running"}, "target running\n")
}

// DbgPrint streams the target's debug output until ctx ends. It does not
// stop the target; if the target is stopped it says so.
func (c *Commander) DbgPrint(ctx context.Context, halted bool) error {
	if halted {
		fmt.Fprintln(os.Stderr, "kdclient: the target is stopped in the debugger: no output until it runs (kdclient ... go)")
	}
	for {
		sc, err := c.Host.WaitStateChange(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := c.emitState(sc); err != nil {
			return err
		}
	}
}

// PrintSink returns an OnPrint callback that writes target output to c.Out.
func (c *Commander) PrintSink() func(cpu uint16, text []byte) {
	return func(cpu uint16, text []byte) {
		if c.JSON {
			b, _ := json.Marshal(map[string]any{"cpu": cpu, "text": string(text)})
			fmt.Fprintf(c.Out, "%s\n", b)
			return
		}
		c.Out.Write(text)
	}
}

// Dump copies n bytes at addr to w in maximal chunks, reporting progress.
func (c *Commander) Dump(ctx context.Context, addr uint64, n int, w io.Writer) error {
	if _, err := c.attach(ctx); err != nil {
		return err
	}
	start := time.Now()
	done := 0
	lastShown := time.Time{}
	for done < n {
		chunk := min(n-done, 64*kd.MaxManipulateData)
		data, err := c.Host.ReadVirtual(ctx, addr+uint64(done), chunk)
		if _, werr := w.Write(data); werr != nil {
			return werr
		}
		done += len(data)
		if c.Progress != nil && (time.Since(lastShown) > 100*time.Millisecond || done == n) {
			lastShown = time.Now()
			fmt.Fprintf(c.Progress, "\r%s", progressBar(done, n, time.Since(start)))
		}
		if err != nil {
			if c.Progress != nil {
				fmt.Fprintln(c.Progress)
			}
			return fmt.Errorf("dump stopped after %d of %d bytes: %w", done, n, err)
		}
	}
	if c.Progress != nil {
		fmt.Fprintln(c.Progress)
	}
	secs := time.Since(start).Seconds()
	rate := float64(n) / (1 << 20) / max(secs, 1e-9)
	return c.emit(map[string]any{"address": hex64(addr), "bytes": n, "seconds": secs, "mib_per_s": rate},
		fmt.Sprintf("dumped %d bytes from %s in %.2fs (%.2f MiB/s)\n", n, hex64(addr), secs, rate))
}

func progressBar(done, total int, elapsed time.Duration) string {
	const width = 30
	frac := float64(done) / float64(max(total, 1))
	full := int(frac * width)
	bar := strings.Repeat("#", full) + strings.Repeat(".", width-full)
	rate := float64(done) / (1 << 20) / max(elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("[%s] %3.0f%% %d/%d bytes %.2f MiB/s", bar, frac*100, done, total, rate)
}

// HexDump formats data like WinDbg's db: address, 16 bytes, ASCII.
func HexDump(addr uint64, data []byte) string {
	var b strings.Builder
	for off := 0; off < len(data); off += 16 {
		line := data[off:min(off+16, len(data))]
		a := addr + uint64(off)
		fmt.Fprintf(&b, "%08x`%08x ", a>>32, a&0xffffffff)
		for i := range 16 {
			switch {
			case i < len(line) && i == 8:
				fmt.Fprintf(&b, "-%02x", line[i])
			case i < len(line):
				fmt.Fprintf(&b, " %02x", line[i])
			default:
				b.WriteString("   ")
			}
		}
		b.WriteString("  ")
		for _, ch := range line {
			if ch >= 0x20 && ch < 0x7f {
				b.WriteByte(ch)
			} else {
				b.WriteByte('.')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseAddress reads an address as WinDbg users write it: hexadecimal, with
// an optional 0x prefix and optional ` separators (fffff802`6bc18000).
func ParseAddress(s string) (uint64, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), "`", "")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("bad address %q: give it in hexadecimal, e.g. fffff802`6bc18000", s)
	}
	return v, nil
}

// ParseLength reads a byte count: decimal, or hexadecimal with 0x.
func ParseLength(s string, max int) (int, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 31)
	if err != nil || v == 0 || int(v) > max {
		return 0, fmt.Errorf("bad length %q: give a byte count from 1 to %d (decimal, or hex with 0x)", s, max)
	}
	return int(v), nil
}
