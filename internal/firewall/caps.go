package firewall

import (
	"strconv"
	"strings"
)

// hasCapText reports whether the CapEff line of a /proc/PID/status text
// holds the given capability.
func hasCapText(status string, capability uint) bool {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && capability < 64 && mask&(1<<capability) != 0
		}
	}
	return false
}
