package spec

import (
	"strconv"
	"strings"
)

// ExpandPipeName replaces the first %d or %x in name with pid and the second
// with tid, in decimal for %d and lower-case hexadecimal for %x. Further
// codes and other text are left as they are.
func ExpandPipeName(name string, pid, tid int) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '%' && i+1 < len(name) && (name[i+1] == 'd' || name[i+1] == 'x') && n < 2 {
			v := pid
			if n == 1 {
				v = tid
			}
			base := 10
			if name[i+1] == 'x' {
				base = 16
			}
			b.WriteString(strconv.FormatInt(int64(v), base))
			n++
			i++
			continue
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

// COMDevice maps a COM port spec (COM2, com2, 2, \\.\COM2 or a device path)
// to the device to open on the operating system goos (a GOOS value):
//
//   - linux, android: COMn → /dev/ttyS(n-1);
//   - freebsd, dragonfly: COMn → /dev/cuau(n-1);
//   - windows: COMn → \\.\COMn;
//   - darwin and other systems: COMn has no fixed device, so it is an error
//     that asks for a device path such as /dev/cu.usbserial-1420.
//
// A device path is returned unchanged when it suits goos (/... on unix-like
// systems, \\.\... on Windows). Errors are of type *Error.
func COMDevice(port, goos string) (string, error) {
	d, err := comDevice(port, goos)
	if err != nil {
		return "", err
	}
	return d, nil
}

func comDevice(port, goos string) (string, *Error) {
	c, verr := normalizeCOM(strings.TrimSpace(port))
	if verr != nil {
		return "", verr.at(port, "port", port)
	}
	n, isCOM := comNumber(c)
	if goos == "windows" {
		if isCOM {
			return `\\.\COM` + strconv.Itoa(n), nil
		}
		if strings.HasPrefix(c, `\\.\`) {
			return c, nil
		}
		return "", newError(port, "port", port, "not a Windows serial device", `give COMn or \\.\Name`)
	}
	if !isCOM {
		if strings.HasPrefix(c, "/") {
			return c, nil
		}
		return "", newError(port, "port", port, "a Windows device name has no meaning on "+goos, "give COMn or a device path such as /dev/ttyUSB0")
	}
	switch goos {
	case "linux", "android":
		return "/dev/ttyS" + strconv.Itoa(n-1), nil
	case "freebsd", "dragonfly":
		return "/dev/cuau" + strconv.Itoa(n-1), nil
	case "darwin", "ios":
		return "", newError(port, "port", port, "macOS has no COMn numbering for serial ports",
			"give the device path instead, e.g. port=/dev/cu.usbserial-1420 (ls /dev/cu.* lists them)")
	}
	return "", newError(port, "port", port, goos+" has no COMn numbering for serial ports",
		"give the device path instead, e.g. port=/dev/ttyU0")
}
