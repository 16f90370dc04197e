// Package targetlink opens the kernel debug connection from kdsrv to a target
// machine on behalf of a remote client, and decides which targets a client
// may ask for at all.
//
// Open returns the host (debugger) end of a target's KD link, a
// kd.Endpoint, for every kind of target: a KDCOM engine (kd.Link) over a
// Stream, or a KDNET engine (kdnet.Link) on a UDP port. A Stream is a
// plain byte stream carrying raw KDCOM (OpenStream opens one alone). The
// kinds of target, as named by a trans=@{...} specification (package
// spec), are:
//
//   - serial, com:port=COMn|DEVICE,baud=N: a serial device opened raw 8N1.
//     COMn maps to the platform's device (spec.COMDevice). Input already
//     waiting in the device is discarded after opening.
//   - pipe, com:pipe,port=PATH[,resets=N][,reconnect]: a virtual machine's
//     serial port. On Linux and macOS PATH is a unix stream socket served by
//     the VM (QEMU -serial unix:PATH,server,nowait; VirtualBox "host pipe");
//     on Windows it is a named pipe \\.\pipe\Name served by the VM
//     (Hyper-V, VirtualBox, VMware). See "Reconnecting pipes" below.
//   - ipport, com:ipport=PORT,port=HOST: KDCOM over TCP, as served by QEMU
//     -serial tcp::PORT,server,nowait. No telnet negotiation is done, and
//     TCP_NODELAY is set.
//   - net, net:port=N,key=K[,target=IP]: KDNET over UDP; kdsrv is the
//     debugger host on port N (docs/kdnet.md).
//
// # The allow-list
//
// kdsrv opens a target only when the operator's allow-list admits it, so
// that a remote client cannot make the server open an arbitrary file or dial
// an arbitrary address. Without -allow flags only local serial devices are
// admitted: /dev/ttyS*, /dev/ttyUSB* and /dev/ttyACM* (plus /dev/cu.* on
// macOS) or COM* on Windows. These defaults admit serial targets only, never
// a pipe. Each -allow flag adds one pattern:
//
//	/run/vm/*.sock          a path or device glob (it contains a slash)
//	COM3, COM*              a Windows COM port glob (it starts with COM)
//	\\.\pipe\vm-*           a Windows device or named pipe glob (a backslash)
//	127.0.0.1:5555          a host and TCP port for com:ipport targets
//	localhost:*, [::1]:*    ... any TCP port on that host
//	10.0.0.*:5555-5560      ... host glob and port range
//	net:50000, net:*        a KDNET UDP port, any port, or a range
//	net:50000-50039
//
// Path globs use path.Match syntax, one path element at a time: "*" and "?"
// never match a slash, "[a-z]" is a character class and a backslash escapes
// the next character (on Windows, where the backslash is the separator,
// there is no escape). "**" has no special meaning and is refused, so list
// each directory. A path pattern must be absolute; it is cleaned, so
// "/run/vm/../x" means "/run/x". Spaces are part of a pattern. Path globs
// admit serial devices and pipes alike.
//
// Before matching, the target's path is cleaned (".." is resolved
// lexically, so "/run/vm/../x.sock" is "/run/x.sock" and cannot sneak out of
// /run/vm) and its symbolic links are resolved (for a path that does not
// exist yet, those of its longest existing parent, and a dangling link is
// followed). Both the path as given and the resolved path must each be
// admitted by some pattern: a symlink inside an allowed directory that
// points outside it is refused. The directory part of a pattern (up to its
// first wildcard) is resolved the same way when the pattern is read, so an
// allowed /tmp/vm/*.sock also admits its real location /private/tmp/vm on
// macOS. A reconnecting pipe checks again before each redial.
//
// The object checked is the object opened. On Linux, Open walks the resolved
// path from the root one element at a time without following symbolic links
// (O_PATH|O_NOFOLLOW), holding a descriptor of what it found, and connects to
// (or reopens) that descriptor through /proc/self/fd; if a symbolic link has
// appeared anywhere on the path since the check, the open is refused as
// "changed". A local user who can write into an allowed directory therefore
// cannot swap a link in between the check and the connection (see
// TestSymlinkSwapRace). On other Unix systems the name is checked again
// after connecting and must still lead to the same file.
//
// Refusals and errors meant for the client name the target as the client
// gave it, never where a path leads on the server: NotAllowedError.Error
// leaves the resolved path out, and NotAllowedError.Detail (for the server's
// log) adds it.
//
// On Windows, paths and COM names are matched case-insensitively, and "\"
// and "/" are the same separator. A COM pattern on other systems names one
// port (COM2 means /dev/ttyS1 on Linux); a COM glob there is refused in
// favour of a device glob such as /dev/ttyS*.
//
// Host patterns are matched after lower-casing, with IP addresses in their
// canonical form; the host part may use "*" and "?" as above. A host that is
// an IP address or an IP glob ("10.1.2.*", "fd00::*") is an IP pattern: it
// matches IP addresses only, never a name that looks like one
// ("10.1.2.attacker.example"). Any other host is a name pattern, matched
// against the name as the client gave it ("debughost:5555" admits the
// target spelled "debughost"); "*" matches both. A name given by a client is
// looked up once, when the link is opened (and by Check when only IP
// patterns could admit it): a name pattern admits all its addresses, an IP
// pattern is checked against every address and admits those it matches,
// and only admitted addresses from that one lookup are dialled, so a second
// DNS answer can never redirect the connection. The one alias is localhost:
// a pattern host "localhost" also admits 127.0.0.1 and ::1 (all three are
// this machine). The port part is a number,
// a range A-B or "*". A pattern starting with "net:" is always a KDNET
// pattern, so a host literally named "net" must be written by its full name
// or address.
//
// A refused target yields a *NotAllowedError whose message names the exact
// -allow pattern (and a broader glob) that would admit it.
//
// # Reconnecting pipes
//
// A pipe with reconnect survives the VM going away (a reboot, a VM restart):
// on end of file or an I/O error the Stream keeps its identity, closes the old
// connection and redials in the background with back-off (100 ms doubling to
// 2 s) until the VM serves the socket again. Meanwhile Read blocks, honouring
// its deadline (the error then satisfies errors.Is(err,
// os.ErrDeadlineExceeded)), and Write discards the bytes and reports
// success, as a serial line with nothing attached would lose them: the KD
// layer above retransmits and resynchronises anyway. Open with reconnect also
// waits, bounded by its context, for a socket that does not exist yet. The
// number of successful redials, and a channel closed at the next one, are
// available through the Reconnecter interface: kdsrv synchronises with the
// target again after every redial. Without reconnect, end of file and errors are returned as
// usual, and a missing socket is an error at Open.
//
// resets=N is a debugger-side setting (how many RESET packets to send while
// synchronising, accepted on every com: target); the pipe Stream reports it
// through Resets() and it does not change the stream.
package targetlink
