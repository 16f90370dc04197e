// Package discovery lets smart clients find KD connection servers, the way
// "kdclient -QR \\Host" lists them.
//
// It has three parts:
//
//   - A machine-wide Registry: each discoverable kdsrv process records the
//     display form of its transports (see Line) in one file of a directory
//     that only privileged processes can write. Entries of processes that
//     died are never reported and are pruned.
//   - A Responder and Query: a small rate-limited UDP protocol (default
//     port 50100) by which a client asks a host for its registry. One
//     process per host answers; the others stand by and take the port over
//     when it exits. Format and FormatJSON render the answer.
//   - Announce and Browse: DNS-SD over multicast DNS (service type
//     "_kdsrv._tcp") for listing servers on the local network without
//     naming a host.
//
// Which servers are discoverable is decided by the caller with Discoverable:
// only elevated servers that are neither hidden nor reverse (clicon) servers.
// The wire formats are described in docs/discovery.md.
package discovery
