// Package spec parses, validates and prints the command-line grammar of kdsrv
// and kdclient: the server transports given to "kdsrv -t", the client side of
// a transport inside "kdclient -k kdsrv:server=@{...}", and the kernel debug
// connection inside "trans=@{...}" (WinDbg's -k grammar).
//
// The package is pure: it performs no I/O, opens no files and touches no
// network. Environment lookups go through a caller-supplied getenv function.
//
// # Grammar
//
// Every specification has the form
//
//	protocol:key=value,flag,key=value,...
//
// Protocol names and keys are case-insensitive. A value may be a brace group
// "@{...}"; commas inside braces belong to the group, groups may nest (up to
// a small fixed depth) and unbalanced braces are an error. Unknown keys,
// duplicated keys, missing required keys, values of the wrong kind and invalid
// combinations are each reported by a distinct *Error that names the key, the
// value (never a password or a KDNET key) and, where obvious, the fix.
//
// # Canonical form
//
// Transport, Target and Connect print in a canonical form: lower-case
// protocol and keys, a fixed key order, flags as bare words, host names
// without a leading \\ and COM ports spelled COMn. The firewall flag keeps the
// seed's spelling "IcfEnable" (it is accepted in any case). String() replaces
// the password and the KDNET key with "*" and is safe for logs; Canonical()
// keeps them and exists so that a specification can be sent on and re-parsed:
// for every valid input s, Parse(x.Canonical()) equals x where x = Parse(s).
//
// # Extensions to the original grammar
//
//   - ipversion=4 is accepted besides ipversion=6 (0 means dual stack).
//   - ipversion= is also accepted on ssl and IcfEnable on ssl and spipe: they
//     run over TCP or a pipe just like tcp and npipe.
//   - On the client, cafile=PATH and thumbprint=HEX select how the server's
//     certificate is verified (alternatives to certuser=/machuser=; none of
//     the four means "system roots").
//   - On the client, a forward tcp/ssl port=A:B (as printed by -QR discovery)
//     is accepted and means port A; both numbers are kept.
package spec
