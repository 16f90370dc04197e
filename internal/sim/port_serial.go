package sim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"kdsrv/internal/logx"
	"kdsrv/internal/serial"
)

// NetworkSerial names a serial device debug port ("serial:/dev/ttyS0",
// "serial:COM1,baud=115200"); ServeSerial serves it.
const NetworkSerial = "serial"

// DefaultSerialBaud is the rate ServeSerial uses when the port names
// none: what Windows' kdcom and most VM serial setups use.
const DefaultSerialBaud = 115200

// ParseSerial splits the address part of a serial debug port, "DEVICE" or
// "DEVICE,baud=N", into the device and the baud rate (DefaultSerialBaud
// when absent).
func ParseSerial(address string) (device string, baud int, err error) {
	device, opts, _ := strings.Cut(address, ",")
	if device == "" {
		return "", 0, fmt.Errorf("serial endpoint %q: name the device, as in serial:/dev/ttyS0 or serial:COM1,baud=115200", address)
	}
	baud = DefaultSerialBaud
	if opts == "" {
		return device, baud, nil
	}
	for _, kv := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "baud":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 || n > 100_000_000 {
				return "", 0, fmt.Errorf("serial endpoint %q: baud=%q is not a rate such as 115200", address, v)
			}
			baud = n
		default:
			return "", 0, fmt.Errorf("serial endpoint %q: unknown option %q (the only one is baud=N)", address, kv)
		}
	}
	return device, baud, nil
}

// ServeSerial makes m reachable on a serial device, the way a kernel's
// debug port is a COM port: the device is opened in raw 8N1 mode at baud
// (input pending from before is dropped) and served for as long as it
// works. A serial line has no connections: debuggers come and go on it
// and resynchronise with break-in and RESET, as they do with a real
// kernel, and the target's state stays. When the device fails (a USB
// adapter unplugged, a pseudo-terminal hung up) or cannot be opened,
// ServeSerial logs why and tries again after a back-off that doubles
// from RedialMin to RedialMax; a device that never opened once is an
// error at once, so a typing mistake is reported instead of retried.
// opts.Ready receives "serial:DEVICE,baud=N" once the device is open.
// ServeSerial returns nil when ctx ends.
func ServeSerial(ctx context.Context, m *Machine, device string, baud int, opts PortOptions) error {
	defer m.hold()() // the machine runs while the line is being reopened
	opts.setDefaults()
	name := fmt.Sprintf("serial:%s,baud=%d", device, baud)
	p, err := serial.Open(device, baud)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	opts.ready(name)
	delay := opts.RedialMin
	for {
		start := time.Now()
		serveOne(ctx, m, p, name, &opts) // closes p
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > opts.RedialMax {
			delay = opts.RedialMin
		}
		for {
			opts.log().Warn("the device stopped working; opening it again", "endpoint", name, "retry_in", delay)
			if !sleepCtx(ctx, delay) {
				return nil
			}
			delay = min(2*delay, opts.RedialMax)
			p, err = serial.Open(device, baud)
			if err == nil {
				break
			}
			opts.log().Warn("cannot open the device", "endpoint", name, logx.Err(err))
		}
	}
}
