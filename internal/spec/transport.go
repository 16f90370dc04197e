package spec

import (
	"strconv"
	"strings"
)

// Proto is a transport protocol between a smart client and a KD connection
// server.
type Proto string

// Transport protocols.
const (
	TCP   Proto = "tcp"   // TCP, optionally a port range; reverse with clicon=
	NPipe Proto = "npipe" // named pipe (a unix socket outside Windows)
	COM   Proto = "com"   // serial line, multiplexed by channel
	SSL   Proto = "ssl"   // TLS over TCP
	SPipe Proto = "spipe" // TLS over a named pipe
)

// Transport is one transport description: a server's -t value, or the
// server=@{...} of a client.
type Transport struct {
	Proto      Proto
	Server     string    // client side only: host to reach (tcp, npipe, ssl, spipe), without leading \\
	Port       PortRange // tcp, ssl
	Pipe       string    // npipe, spipe: the pipe name as given (may contain %d/%x on the server)
	Clicon     string    // reverse connection: server side = client host to dial; client side = server host expected to dial in
	Hidden     bool      // server side: not listed by -QR
	IcfEnable  bool      // server side: open the firewall for the port or pipe
	Password   string    // "" = none
	IPVersion  int       // 0 = automatic (dual stack), 4, or 6
	COMPort    string    // com: "COM2" (normalized) or a device path
	Baud       int       // com
	Channel    int       // com: 0..254
	TLSProto   string    // ssl/spipe: "tls1"
	CertUser   string    // ssl/spipe: certificate in the user store (name or thumbprint)
	MachUser   string    // ssl/spipe: certificate in the machine store
	CAFile     string    // client-side extension: PEM file of CA certificates
	Thumbprint string    // client-side extension: pinned SHA-1 thumbprint, upper-case hex without spaces
}

// side says which end of a connection a transport describes.
type side int

const (
	serverSide side = iota
	clientSide
)

func (s side) String() string {
	if s == serverSide {
		return "server (kdsrv -t)"
	}
	return "client (kdclient -k kdsrv:server=@{...})"
}

// transportKeys lists every key the transport grammar knows, in canonical
// order. It is used for hints.
var transportKeys = []string{
	"proto", "certuser", "machuser", "cafile", "thumbprint", "server", "pipe",
	"port", "baud", "channel", "clicon", "hidden", "password", "ipversion", "icfenable",
}

// keyAllowed says whether key may appear in a transport of proto on side sd;
// when it may not, it returns the message and hint of the error.
func keyAllowed(sd side, proto Proto, key string) (ok bool, msg, hint string) {
	tls := proto == SSL || proto == SPipe
	switch key {
	case "server":
		if sd == serverSide {
			return false, "server= belongs to the client's -k kdsrv:server=@{...}, not to kdsrv -t",
				"a server listens on port= (tcp, ssl) or pipe= (npipe, spipe); use clicon=Client for a reverse connection"
		}
		if proto == COM {
			return false, "com has no server host: the client reaches the server over its serial line", "remove server="
		}
		return true, "", ""
	case "clicon":
		if proto == TCP || proto == SSL {
			return true, "", ""
		}
		return false, "clicon= (reverse connection) works only with tcp and ssl", "use tcp:port=N,clicon=Host or ssl:...,port=N,clicon=Host"
	case "port":
		if proto == NPipe || proto == SPipe {
			return false, string(proto) + " uses pipe=, not port=", "give pipe=Name"
		}
		return true, "", ""
	case "pipe":
		if proto == NPipe || proto == SPipe {
			return true, "", ""
		}
		return false, "pipe= is only for npipe and spipe", ""
	case "baud", "channel":
		if proto == COM {
			return true, "", ""
		}
		return false, key + "= is only for com", ""
	case "hidden":
		if sd == clientSide {
			return false, "hidden is a server option (it hides the server from -QR)", "give it to kdsrv -t"
		}
		return true, "", ""
	case "password":
		return true, "", ""
	case "ipversion":
		if proto == TCP || proto == SSL {
			return true, "", ""
		}
		return false, "ipversion= is only for tcp and ssl", ""
	case "icfenable":
		if sd == clientSide {
			return false, "IcfEnable is a server option (it opens the server's firewall)", "give it to kdsrv -t"
		}
		if proto == COM {
			return false, "IcfEnable opens a firewall port, and com has no network port to open", "remove IcfEnable"
		}
		return true, "", ""
	case "proto", "certuser", "machuser":
		if tls {
			return true, "", ""
		}
		return false, key + "= is a TLS option and " + string(proto) + " has no TLS",
			"use ssl (TLS over TCP) or spipe (TLS over a pipe), or remove " + key + "="
	case "cafile", "thumbprint":
		if sd == serverSide {
			return false, key + "= is a client option (how the client verifies the server)",
				"the server names its certificate with certuser= or machuser="
		}
		if tls {
			return true, "", ""
		}
		return false, key + "= is a TLS option and " + string(proto) + " has no TLS", "use ssl or spipe"
	}
	var valid []string
	for _, k := range transportKeys {
		if ok, _, _ := keyAllowed(sd, proto, k); ok {
			if k == "icfenable" {
				k = "IcfEnable"
			}
			valid = append(valid, k)
		}
	}
	return false, "unknown key for " + string(proto) + " on the " + sd.String(),
		"valid keys: " + strings.Join(valid, ", ")
}

// flagKeys are the keys that take no value.
var flagKeys = map[string]bool{"hidden": true, "icfenable": true}

// ParseServerTransport parses the value of kdsrv -t, one of the seed's forms:
//
//	npipe:pipe=PipeName[,hidden][,password=Password][,IcfEnable]
//	tcp:port=Socket[,hidden][,password=Password][,ipversion=6][,IcfEnable]
//	tcp:port=Socket,clicon=Client[,password=Password][,ipversion=6]
//	com:port=COMPort,baud=BaudRate,channel=COMChannel[,hidden][,password=Password]
//	spipe:proto=Protocol,{certuser=Cert|machuser=Cert},pipe=PipeName[,hidden][,password=Password]
//	ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket[,hidden][,password=Password]
//	ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket,clicon=Client[,password=Password]
//
// Errors are of type *Error.
func ParseServerTransport(s string) (*Transport, error) {
	return exported(parseTransport(s, serverSide))
}

// ParseClientTransport parses the server=@{...} part of a smart client's -k
// (without the @{ }):
//
//	tcp:server=Host,port=N[,password=P][,ipversion=6]
//	tcp:clicon=Host,port=N|A:B[,password=P][,ipversion=6]
//	npipe:server=Host,pipe=Name[,password=P]
//	com:port=COMPort,baud=N,channel=N[,password=P]
//	ssl:proto=tls1[,certuser=C|machuser=C|cafile=PATH|thumbprint=HEX],server=Host,port=N[,password=P]
//	ssl:proto=tls1[,...],clicon=Host,port=N|A:B[,password=P]
//	spipe:proto=tls1[,...],server=Host,pipe=Name[,password=P]
//
// Errors are of type *Error.
func ParseClientTransport(s string) (*Transport, error) {
	return exported(parseTransport(s, clientSide))
}

func parseTransport(input string, sd side) (*Transport, *Error) {
	l, lerr := lex(input)
	if lerr != nil {
		return nil, lerr
	}
	t := &Transport{Proto: Proto(l.proto)}
	switch t.Proto {
	case TCP, NPipe, COM, SSL, SPipe:
	case "kdsrv":
		return nil, newError(input, "", l.proto, "kdsrv: is a smart client's -k value, not a transport",
			"give a transport such as tcp:port=5005")
	default:
		return nil, newError(input, "", l.proto, "unknown transport protocol", "use tcp, npipe, com, ssl or spipe")
	}
	seen := make(map[string]bool)
	for _, p := range l.params {
		if ok, msg, hint := keyAllowed(sd, t.Proto, p.key); !ok {
			return nil, newError(input, p.key, p.value, msg, hint)
		}
		if flagKeys[p.key] {
			if p.hasValue {
				return nil, newError(input, p.key, p.value, p.key+" is a flag and takes no value",
					"write just "+p.key+", or leave it out")
			}
		} else if !p.hasValue {
			return nil, newError(input, p.key, "", "needs a value", "write "+p.key+"=...")
		}
		seen[p.key] = true
		if verr := t.set(sd, p); verr != nil {
			return nil, verr.at(input, p.key, p.value)
		}
	}
	if err := t.checkRequired(input, sd, seen); err != nil {
		return nil, err
	}
	return t, nil
}

// set stores one validated parameter.
func (t *Transport) set(sd side, p param) *valueError {
	var err *valueError
	v := p.value
	switch p.key {
	case "server":
		t.Server, err = normalizeHost(v)
	case "clicon":
		t.Clicon, err = normalizeHost(v)
	case "port":
		if t.Proto == COM {
			t.COMPort, err = normalizeCOM(v)
		} else {
			t.Port, err = parsePortRange(v)
		}
	case "pipe":
		err = checkPipeName(v, sd == serverSide)
		t.Pipe = v
	case "baud":
		t.Baud, err = parseBaud(v)
	case "channel":
		n, ok := parseDecimal(v, 254)
		if !ok {
			return &valueError{"channel must be a number from 0 to 254", "e.g. channel=0"}
		}
		t.Channel = n
	case "hidden":
		t.Hidden = true
	case "icfenable":
		t.IcfEnable = true
	case "password":
		err = checkPassword(v)
		t.Password = v
	case "ipversion":
		switch v {
		case "6":
			t.IPVersion = 6
		case "4":
			t.IPVersion = 4
		default:
			return &valueError{"ipversion must be 6 (or 4)", "leave ipversion= out for dual stack"}
		}
	case "proto":
		switch strings.ToLower(v) {
		case "tls1":
			t.TLSProto = "tls1"
		case "pct1", "ssl2", "ssl3":
			return &valueError{strings.ToLower(v) + " is a broken protocol and is refused",
				"use proto=tls1, which negotiates TLS 1.2 or TLS 1.3"}
		default:
			return &valueError{"unknown TLS protocol", "use proto=tls1 (negotiates TLS 1.2 or TLS 1.3)"}
		}
	case "certuser":
		err = checkCert(v)
		t.CertUser = v
	case "machuser":
		err = checkCert(v)
		t.MachUser = v
	case "cafile":
		err = checkPath(v)
		t.CAFile = v
	case "thumbprint":
		t.Thumbprint, err = normalizeThumbprint(v)
	}
	return err
}

// checkRequired checks the keys each form needs and the combinations.
func (t *Transport) checkRequired(input string, sd side, seen map[string]bool) *Error {
	need := func(key, hint string) *Error {
		if seen[key] {
			return nil
		}
		return newError(input, key, "", "missing required key for "+string(t.Proto), hint)
	}
	if t.Proto == SSL || t.Proto == SPipe {
		if err := need("proto", "add proto=tls1"); err != nil {
			return err
		}
		certs := 0
		var last string
		for _, k := range []string{"certuser", "machuser", "cafile", "thumbprint"} {
			if seen[k] {
				certs++
				last = k
			}
		}
		if sd == serverSide {
			if certs == 0 {
				return newError(input, "certuser", "", "missing certificate: "+string(t.Proto)+" needs certuser=Cert or machuser=Cert",
					"certuser= looks in the user's store, machuser= in the machine store")
			}
			if certs > 1 {
				return newError(input, last, "", "give either certuser= or machuser=, not both", "")
			}
		} else if certs > 1 {
			return newError(input, last, "", "give at most one of certuser=, machuser=, cafile= and thumbprint=",
				"leave all four out to verify the server against the system roots")
		}
	}
	switch t.Proto {
	case TCP, SSL:
		if sd == clientSide {
			if seen["server"] && seen["clicon"] {
				return newError(input, "clicon", "", "give either server= (connect) or clicon= (wait for the server to connect), not both", "")
			}
			if !seen["server"] && !seen["clicon"] {
				return newError(input, "server", "", "missing required key for "+string(t.Proto),
					"give server=Host to connect, or clicon=Host to wait for a reverse-connection server")
			}
		}
		if err := need("port", "add port=N"); err != nil {
			return err
		}
		if sd == serverSide && t.Clicon != "" && t.Port.IsRange() {
			return newError(input, "port", t.Port.String(), "a reverse-connection server must give one port (the port the client listens on), not a range",
				"only the client may give a range with clicon")
		}
	case NPipe, SPipe:
		if sd == clientSide {
			if err := need("server", `add server=Host (\\ optional)`); err != nil {
				return err
			}
		}
		if err := need("pipe", "add pipe=Name"); err != nil {
			return err
		}
	case COM:
		for _, k := range []string{"port", "baud", "channel"} {
			if err := need(k, "com needs port=COMPort,baud=BaudRate,channel=COMChannel"); err != nil {
				return err
			}
		}
	}
	return nil
}

// String returns the canonical form with the password shown as "*". It is
// safe for logs.
func (t *Transport) String() string { return t.format(true) }

// Canonical returns the canonical form including the real password, for
// sending on and re-parsing only.
func (t *Transport) Canonical() string { return t.format(false) }

func (t *Transport) format(redactPassword bool) string {
	var f fieldList
	f.add("proto", t.TLSProto)
	f.add("certuser", t.CertUser)
	f.add("machuser", t.MachUser)
	f.add("cafile", t.CAFile)
	f.add("thumbprint", t.Thumbprint)
	f.add("server", t.Server)
	f.add("pipe", t.Pipe)
	if t.Proto == COM {
		f.add("port", t.COMPort)
		f.add("baud", strconv.Itoa(t.Baud))
		f.add("channel", strconv.Itoa(t.Channel))
	} else if !t.Port.IsZero() {
		f.add("port", t.Port.String())
	}
	f.add("clicon", t.Clicon)
	f.flag("hidden", t.Hidden)
	f.secret("password", t.Password, redactPassword)
	if t.IPVersion != 0 {
		f.add("ipversion", strconv.Itoa(t.IPVersion))
	}
	f.flag("IcfEnable", t.IcfEnable)
	return f.join(string(t.Proto))
}

// Warnings returns non-fatal remarks about a valid transport, one sentence
// each, never containing the password.
func (t *Transport) Warnings() []string {
	var w []string
	if t.Reverse() && t.Hidden {
		w = append(w, "hidden has no effect with clicon: a reverse-connection server is never listed by -QR")
	}
	if t.Reverse() && t.IcfEnable {
		w = append(w, "IcfEnable has no effect with clicon: the server dials out and opens no listening port")
	}
	if t.Password != "" && !t.IsTLS() {
		w = append(w, "password on "+string(t.Proto)+": the password is never sent (challenge-response), but the session is not encrypted; use ssl or spipe for privacy")
	}
	return w
}

// IsTLS reports whether the transport runs TLS (ssl or spipe).
func (t *Transport) IsTLS() bool { return t.Proto == SSL || t.Proto == SPipe }

// Reverse reports whether the transport is a reverse connection (clicon=).
func (t *Transport) Reverse() bool { return t.Clicon != "" }
