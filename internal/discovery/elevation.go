package discovery

// Discoverable reports whether a server with the given properties may be
// registered for -QR discovery, and a one-line reason suitable for the
// server's start-up notice. The caller registers the server only when the
// first result is true.
//
// elevated is the result of Elevated (or the server's own notion of it),
// hidden is the transport's "hidden" flag and reverse is true for a
// reverse-connection ("clicon=") server.
func Discoverable(elevated, hidden, reverse bool) (bool, string) {
	switch {
	case reverse:
		return false, "not discoverable by -QR: reverse-connection (clicon) servers are never listed"
	case hidden:
		return false, "not discoverable by -QR: the transport is marked hidden"
	case !elevated:
		return false, "not discoverable by -QR: " + notElevatedReason
	}
	return true, "discoverable by -QR"
}
