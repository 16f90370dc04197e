// Package kdnet implements the datagram codec, the cryptography and the
// key-exchange handshake of KDNET, Windows' kernel-debugger transport over UDP
// (bcdedit /dbgsettings net hostip:IP port:N key:a.b.c.d).
//
// The codec part (Sealer, keys, handshake bodies, SeqWindow) is pure: it owns
// no socket and starts no goroutine. On top of it, [Link] runs the KD
// link layer over UDP in either role — [ListenHost] for the debugger host
// (what kdsrv does for trans=@{net:...}) and [DialTarget] for a target (what
// kdtarget -kdnet does): KDNET packet ids (+2 per packet, exact-id ACKs, no
// trailer), retransmission on loss, break-in datagrams, the handshake and
// new sessions after a target reboot.
//
// # Wire format
//
// Every KDNET datagram is
//
//	off   size  field
//	0     4     magic "MDBG"
//	4     1     version (Windows 8.1 sends 2; a host echoes the target's value)
//	5     1     channel: 0 data, 1 control
//	6     8     metadata, big-endian: seq<<8 | dir<<7 | pad
//	14    n     payload (one KD packet without the 0xAA trailer, a lone 0x62
//	            break-in byte, or a handshake body)
//	14+n  pad   zero bytes so that (8 + n + pad) % 16 == 0
//	end-16 16   tag: the first 16 bytes of HMAC-SHA256 over bytes [0, end-16)
//	            of the plaintext datagram
//
// seq is a 56-bit sequence number, dir is 1 for host→target, pad is 0..15 and
// the metadata bits 4..6 are zero. Bytes [6, end-16) — metadata, payload and
// padding — are encrypted with AES-256-CBC without padding, using the tag as
// the IV. The control channel is encrypted with the control key (the key the
// user typed), the data channel with the data key negotiated by the
// handshake. The HMAC key is the bitwise NOT of the control key on both
// channels; the captured Windows traffic in testdata/capture proves this for
// the data channel.
//
// Because the tag authenticates the plaintext, a receiver must decrypt before
// it can check the tag. [Sealer.Open] decrypts into a private buffer and
// compares the tag in constant time before it looks at any decrypted byte,
// so nothing in an unauthenticated datagram is ever parsed or returned.
//
// # Handshake
//
// The target sends a control-channel poke (body [PokeSize] bytes, see
// [Poke]) to the host every 3 seconds. The host answers on the control
// channel with the poke's sequence number and a [ResponseSize]-byte body
// (see [Response]). Both sides then use
//
//	data key = SHA-256(control key ‖ response body)
//
// for the data channel ([DeriveDataKey]). A target that reboots pokes again
// with a fresh client random and restarts its sequence numbers, so a new poke
// means new session state ([SeqWindow.Reset]).
package kdnet
