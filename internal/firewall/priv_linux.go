package firewall

import "os"

// capNetAdmin is the capability number of CAP_NET_ADMIN.
const capNetAdmin = 12

// privileged reports whether the process has CAP_NET_ADMIN (root has it).
func privileged() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	return hasCapText(string(b), capNetAdmin)
}
