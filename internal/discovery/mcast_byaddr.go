//go:build !linux

package discovery

import "net"

// firstIPv4 is ifi's first IPv4 address (zero if it has none), for the
// platforms that name a multicast interface by address.
func firstIPv4(ifi *net.Interface) [4]byte {
	for _, a := range ifaceAddrs(ifi, true) {
		return a.As4()
	}
	return [4]byte{}
}
