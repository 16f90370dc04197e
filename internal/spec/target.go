package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TargetKind is the kind of kernel debug connection a Target describes.
type TargetKind string

// Target kinds.
const (
	TargetSerial TargetKind = "serial" // com:port=COMn|DEVICE,baud=N
	TargetPipe   TargetKind = "pipe"   // com:pipe,port=PATH[,resets=N][,reconnect]
	TargetIPPort TargetKind = "ipport" // com:ipport=PORT,port=HOST
	TargetNet    TargetKind = "net"    // net:port=N,key=a.b.c.d[,target=IP]
	TargetUnset  TargetKind = ""       // "com:" with nothing decisive; filled from the environment
)

// Environment variables honoured by Target.FillFromEnv, as documented for
// Microsoft's kernel debuggers.
const (
	EnvPort     = "_NT_DEBUG_PORT"      // COM port (COMn, n, \\.\COMn or a device path); for com:pipe the pipe path
	EnvBaudRate = "_NT_DEBUG_BAUD_RATE" // baud rate of a serial target
	EnvBus      = "_NT_DEBUG_BUS"       // "1394" selects a 1394 link, which is refused (not supported)
)

// Target is a trans=@{...} kernel debug connection (WinDbg -k grammar).
type Target struct {
	Kind      TargetKind // "" when only "com:" with nothing decisive was given (filled from env)
	Port      string     // serial: "COM1" or device path; pipe: path; ipport: IP or host
	Baud      int        // 0 = not given
	Resets    int        // any com: link; -1 = not given; 0 = unlimited
	Reconnect bool       // pipe: wait for the pipe and reopen it after errors
	IPPort    int        // ipport: TCP port
	NetPort   int        // net: UDP port
	Key       string     // net: a.b.c.d (secret: shown as key=* in String())
	TargetIP  string     // net: optional
}

// ParseTarget parses a trans=@{...} value (without the @{ }):
//
//	com:port=COMn|PATH,baud=N[,resets=N]       real serial port
//	com:pipe,port=PATH[,resets=N][,reconnect]  VM serial pipe (a unix socket outside Windows)
//	com:ipport=PORT,port=HOST[,resets=N]       KDCOM over TCP
//	net:port=N,key=a.b.c.d[,target=IP]         KDNET over UDP
//
// Fields may be missing ("com:" alone is valid): the server fills them with
// FillFromEnv and then checks them with Complete. 1394: and usb: are
// recognised and refused. Errors are of type *Error.
func ParseTarget(s string) (*Target, error) { return exported(parseTarget(s)) }

func parseTarget(input string) (*Target, *Error) {
	l, lerr := lex(input)
	if lerr != nil {
		return nil, lerr
	}
	switch l.proto {
	case "com":
		return parseComTarget(input, l)
	case "net":
		return parseNetTarget(input, l)
	case "1394", "usb":
		return nil, newError(input, "", l.proto, l.proto+" kernel debug connections are not supported",
			"use com: (serial, VM pipe, ipport) or net: (KDNET)")
	default:
		return nil, newError(input, "", l.proto, "unknown kernel debug connection type", "use com: or net:")
	}
}

// targetKeys are the keys of one kind of target (com: or net:).
type targetKeys struct {
	flags   []string // keys without a value
	values  []string // keys with a value
	foreign []string // the other kind's keys
	// foreignMsg (a format for the key) refuses a foreign key; unknownMsg
	// and validHint refuse any other.
	foreignMsg, unknownMsg, validHint string
}

var (
	comKeys = targetKeys{
		flags:   []string{"pipe", "reconnect"},
		values:  []string{"port", "baud", "resets", "ipport"},
		foreign: []string{"key", "target"}, foreignMsg: "%s= belongs to net: (KDNET), not com:",
		unknownMsg: "unknown key for a com: kernel connection",
		validHint:  "valid keys: port, baud, pipe, resets, reconnect, ipport",
	}
	netKeys = targetKeys{
		values:  []string{"port", "key", "target"},
		foreign: []string{"baud", "pipe", "resets", "reconnect", "ipport"}, foreignMsg: "%s belongs to com:, not net:",
		unknownMsg: "unknown key for a net: (KDNET) connection",
		validHint:  "valid keys: port, key, target",
	}
)

// check refuses a key of the other kind or an unknown key, a flag given a
// value and a key without one.
func (k targetKeys) check(input string, p param) *Error {
	flag := slices.Contains(k.flags, p.key)
	switch {
	case flag || slices.Contains(k.values, p.key):
	case slices.Contains(k.foreign, p.key):
		return newError(input, p.key, p.value, fmt.Sprintf(k.foreignMsg, p.key), "")
	default:
		return newError(input, p.key, p.value, k.unknownMsg, k.validHint)
	}
	if flag && p.hasValue {
		return newError(input, p.key, p.value, p.key+" is a flag and takes no value", "write just "+p.key)
	}
	if !flag && !p.hasValue {
		return newError(input, p.key, "", "needs a value", "write "+p.key+"=...")
	}
	return nil
}

func parseComTarget(input string, l *lexed) (*Target, *Error) {
	t := &Target{Resets: -1}
	byKey := make(map[string]param)
	for _, p := range l.params {
		if err := comKeys.check(input, p); err != nil {
			return nil, err
		}
		byKey[p.key] = p
	}
	_, pipe := byKey["pipe"]
	ipp, ipport := byKey["ipport"]
	port, hasPort := byKey["port"]
	switch {
	case pipe && ipport:
		return nil, newError(input, "ipport", ipp.value, "com:pipe and ipport= cannot be combined",
			"use com:pipe,port=PATH for a pipe or com:ipport=N,port=HOST for TCP")
	case pipe:
		t.Kind = TargetPipe
		if hasPort {
			if err := checkPipePath(port.value); err != nil {
				return nil, err.at(input, "port", port.value)
			}
			t.Port = port.value
		}
	case ipport:
		t.Kind = TargetIPPort
		n, err := parsePort(ipp.value)
		if err != nil {
			return nil, err.at(input, "ipport", ipp.value)
		}
		t.IPPort = int(n)
		if hasPort {
			h, err := normalizeHost(port.value)
			if err != nil {
				return nil, err.at(input, "port", port.value)
			}
			t.Port = h
		}
	case hasPort:
		t.Kind = TargetSerial
		c, err := normalizeCOM(port.value)
		if err != nil {
			return nil, err.at(input, "port", port.value)
		}
		t.Port = c
	}
	if p, ok := byKey["baud"]; ok {
		n, err := parseBaud(p.value)
		if err != nil {
			return nil, err.at(input, "baud", p.value)
		}
		t.Baud = n
	}
	// resets= is the debugger's synchronisation schedule and applies to
	// every com: link; reconnect reopens a pipe and means nothing else.
	if p, ok := byKey["reconnect"]; ok && !pipe {
		return nil, newError(input, "reconnect", p.value, "reconnect applies only to a VM pipe (com:pipe)",
			"write com:pipe,port=PATH,reconnect")
	}
	if p, ok := byKey["resets"]; ok {
		n, ok := parseDecimal(p.value, 1<<31-1)
		if !ok {
			return nil, newError(input, "resets", p.value, "resets must be a non-negative integer (0 = unlimited)", "e.g. resets=0")
		}
		t.Resets = n
	}
	_, t.Reconnect = byKey["reconnect"]
	return t, nil
}

// checkPipePath validates the path of a VM pipe: an absolute unix path, or a
// Windows pipe path \\.\pipe\Name or \\Host\pipe\Name.
func checkPipePath(s string) *valueError {
	if err := checkPath(s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "/") {
		return nil
	}
	if strings.HasPrefix(s, `\\`) {
		host, rest, ok := strings.Cut(s[2:], `\`)
		if !ok || host == "" || len(rest) < 5 || !strings.EqualFold(rest[:5], `pipe\`) {
			return &valueError{`a Windows pipe path is \\.\pipe\Name or \\Host\pipe\Name`, ""}
		}
		if rest[5:] == "" {
			return &valueError{"pipe path has an empty pipe name", `write \\.\pipe\Name`}
		}
		return nil
	}
	return &valueError{"not a pipe path", `give an absolute socket path such as /run/vm/com1.sock, or \\.\pipe\Name`}
}

func parseNetTarget(input string, l *lexed) (*Target, *Error) {
	t := &Target{Kind: TargetNet, Resets: -1}
	for _, p := range l.params {
		if err := netKeys.check(input, p); err != nil {
			return nil, err
		}
		switch p.key {
		case "port":
			n, err := parsePort(p.value)
			if err != nil {
				return nil, err.at(input, "port", p.value)
			}
			t.NetPort = int(n)
		case "key":
			k, err := checkKDNETKey(p.value)
			if err != nil {
				return nil, err.at(input, "key", "")
			}
			t.Key = k
		case "target":
			ip, err := checkIP(p.value)
			if err != nil {
				return nil, err.at(input, "target", p.value)
			}
			t.TargetIP = ip
		}
	}
	return t, nil
}

// String returns the canonical form with the KDNET key shown as "*".
func (t *Target) String() string { return t.format(true) }

// Canonical returns the canonical form including the KDNET key; the client
// sends it to the server, which re-parses it.
func (t *Target) Canonical() string { return t.format(false) }

func (t *Target) format(redactKey bool) string {
	var f fieldList
	if t.Kind == TargetNet {
		f.num("port", t.NetPort)
		f.secret("key", t.Key, redactKey)
		f.add("target", t.TargetIP)
		return f.join("net")
	}
	switch t.Kind {
	case TargetPipe:
		f.flag("pipe", true)
	case TargetIPPort:
		f.num("ipport", t.IPPort)
	}
	f.add("port", t.Port)
	f.num("baud", t.Baud)
	if t.Resets >= 0 {
		f.add("resets", strconv.Itoa(t.Resets))
	}
	f.flag("reconnect", t.Kind == TargetPipe && t.Reconnect)
	return f.join("com")
}

// FillFromEnv fills the fields the client omitted from the server machine's
// environment, read through getenv (os.Getenv in production):
//
//   - _NT_DEBUG_PORT supplies port= of a serial target, of a target given as
//     bare "com:" (which then becomes a serial target) and of com:pipe;
//   - _NT_DEBUG_BAUD_RATE supplies baud= of a serial target;
//   - _NT_DEBUG_BUS=1394 (the only value Microsoft documents) makes a bare
//     "com:" fail with "1394 not supported" instead of using _NT_DEBUG_PORT.
//
// _NT_DEBUG_1394_CHANNEL and _NT_DEBUG_1394_SYMLINK belong to 1394 links and
// are not used; KDQUIET, _NT_DEBUG_CACHE_SIZE and _NT_DEBUG_OPTIONS tune the
// debugger, not the link. net: targets take nothing from the environment.
// A variable is read only when its field is missing; an invalid value is an
// error naming the variable. Explicit values are never overridden.
func (t *Target) FillFromEnv(getenv func(string) string) error {
	if err := t.fillFromEnv(getenv); err != nil {
		return err
	}
	return nil
}

func (t *Target) fillFromEnv(getenv func(string) string) *Error {
	input := t.Canonical()
	if t.Kind == TargetUnset && t.Port == "" {
		if bus := strings.TrimSpace(getenv(EnvBus)); bus != "" {
			if bus == "1394" {
				return newError(input, "", "", EnvBus+"=1394 selects a 1394 kernel debug connection, which is not supported",
					"unset "+EnvBus+" or give trans=@{com:port=...} or trans=@{net:...}")
			}
			return newError(input, "", "", EnvBus+"="+quote(bus)+" is not a known bus (only 1394 is documented)", "unset "+EnvBus)
		}
	}
	switch t.Kind {
	case TargetUnset, TargetSerial:
		if t.Port == "" {
			if v := strings.TrimSpace(getenv(EnvPort)); v != "" {
				c, err := normalizeCOM(v)
				if err != nil {
					return newError(input, "port", v, EnvPort+" is invalid: "+err.msg, err.hint)
				}
				t.Port = c
				t.Kind = TargetSerial
			}
		}
		if t.Baud == 0 {
			if v := strings.TrimSpace(getenv(EnvBaudRate)); v != "" {
				n, err := parseBaud(v)
				if err != nil {
					return newError(input, "baud", v, EnvBaudRate+" is invalid: "+err.msg, err.hint)
				}
				t.Baud = n
			}
		}
	case TargetPipe:
		if t.Port == "" {
			if v := strings.TrimSpace(getenv(EnvPort)); v != "" {
				if err := checkPipePath(v); err != nil {
					return newError(input, "port", v, EnvPort+" is invalid for com:pipe: "+err.msg, err.hint)
				}
				t.Port = v
			}
		}
	}
	return nil
}

// Complete reports the first required field that is still missing, naming
// the key and the environment variable that could have supplied it.
func (t *Target) Complete() error {
	if err := t.complete(); err != nil {
		return err
	}
	return nil
}

func (t *Target) complete() *Error {
	input := t.Canonical()
	missing := func(key, hint string) *Error {
		return newError(input, key, "", "missing required key for a "+string(t.Kind)+" kernel connection", hint)
	}
	switch t.Kind {
	case TargetUnset:
		return newError(input, "port", "", "missing: the kernel debug connection names no port",
			"give trans=@{com:port=COMn,baud=N} or set "+EnvPort+" (and "+EnvBaudRate+") on the server machine")
	case TargetSerial:
		if t.Port == "" {
			return missing("port", "give port=COMn or set "+EnvPort+" on the server machine")
		}
		if t.Baud == 0 {
			return missing("baud", "give baud=N (e.g. 115200) or set "+EnvBaudRate+" on the server machine")
		}
	case TargetPipe:
		if t.Port == "" {
			return missing("port", "give port=PATH or set "+EnvPort+" on the server machine")
		}
	case TargetIPPort:
		if t.IPPort == 0 {
			return missing("ipport", "give ipport=PORT (no environment variable supplies it)")
		}
		if t.Port == "" {
			return missing("port", "give port=HOST, the address to reach (no environment variable supplies it)")
		}
	case TargetNet:
		if t.NetPort == 0 {
			return missing("port", "give port=N, the UDP port of bcdedit /dbgsettings (no environment variable supplies it)")
		}
		if t.Key == "" {
			return missing("key", "give key=a.b.c.d from bcdedit /dbgsettings (no environment variable supplies it)")
		}
	default:
		return newError(input, "", string(t.Kind), "unknown kernel connection kind", "")
	}
	return nil
}
