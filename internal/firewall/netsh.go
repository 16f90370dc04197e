package firewall

import (
	"context"
	"fmt"
	"os"
	"strings"
)

func netshArgv(verb, name string, extra ...string) []string {
	return append([]string{"netsh", "advfirewall", "firewall", verb, "rule", `name="` + name + `"`}, extra...)
}

func netshAddArgv(name, proto string, ports []int) []string {
	return netshArgv("add", name, "dir=in", "action=allow", "protocol="+strings.ToUpper(proto), "localport="+joinPorts(ports))
}

// openNetsh adds an inbound allow rule named name for proto ports through
// the Windows firewall.
func (f *Firewall) openNetsh(ctx context.Context, proto string, ports []int, name string) (Result, error) {
	add := netshAddArgv(name, proto, ports)
	remove := f.display(netshArgv("delete", name)...)
	manual := f.display(add...)
	res := Result{Backend: BackendNetsh}
	if !f.has("netsh") {
		return Result{Backend: BackendNone}, fmt.Errorf("IcfEnable: netsh was not found; the Windows firewall was not changed; allow %s port %s in Windows Defender Firewall yourself", proto, joinPorts(ports))
	}
	if !f.privileged() {
		return res, fmt.Errorf("IcfEnable needs an elevated prompt (Run as administrator); the Windows firewall was not changed; to open it yourself run as Administrator: %s", manual)
	}
	run := f.runner()
	if _, err := run.Run(ctx, netshArgv("show", name)); err == nil {
		res.Rule = f.display(add...)
		res.Remove = remove
		res.Existing = true
		res.Note = "a rule with this name was already present, so nothing was added"
		return res, nil
	}
	if _, err := run.Run(ctx, add); err != nil {
		return res, notChanged("adding the Windows firewall rule", err, manual)
	}
	res.Rule = f.display(add...)
	res.Remove = remove
	res.Note = "inbound allow rule for all firewall profiles; it stays after kdsrv exits"
	return res, nil
}

// darwinNote explains how to allow kdsrv through the macOS application
// firewall, which kdsrv does not change.
func darwinNote(r Request) string {
	exe, err := os.Executable()
	if err != nil || exe == "" {
		exe = "/path/to/kdsrv"
	}
	const fw = "/usr/libexec/ApplicationFirewall/socketfilterfw"
	return fmt.Sprintf("macOS: kdsrv does not change pf; if the application firewall is on, it asks whether kdsrv may accept incoming connections (%s port %d) the first time it listens; to allow it beforehand run: sudo %s --add %s && sudo %s --unblockapp %s",
		r.Proto, r.Port, fw, shellQuote(exe), fw, shellQuote(exe))
}
