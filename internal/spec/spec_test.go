package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// grammar names the parser a table row goes through.
type grammar int

const (
	gServer grammar = iota
	gClient
	gTarget
	gConnect
)

func (g grammar) String() string {
	return [...]string{"server", "client", "target", "connect"}[g]
}

// printable is what every parse result offers.
type printable interface {
	String() string
	Canonical() string
}

// parseAs runs the parser of g.
func parseAs(g grammar, s string) (printable, error) {
	switch g {
	case gServer:
		return ParseServerTransport(s)
	case gClient:
		return ParseClientTransport(s)
	case gTarget:
		return ParseTarget(s)
	default:
		return ParseConnect(s)
	}
}

type row struct {
	g    grammar
	in   string
	want string // canonical String() of a valid input
	key  string // error Key of an invalid input ("" = structural)
	frag string // fragment of Error() of an invalid input
}

// ok and bad build table rows.
func ok(g grammar, in, want string) row       { return row{g: g, in: in, want: want} }
func bad(g grammar, in, key, frag string) row { return row{g: g, in: in, key: key, frag: frag} }

func (r row) valid() bool { return r.frag == "" }

var table = []row{
	// The seed's seven server forms.
	ok(gServer, `npipe:pipe=PipeName`, `npipe:pipe=PipeName`),
	ok(gServer, `npipe:pipe=kd_%d_%x,hidden,password=Secret1,IcfEnable`, `npipe:pipe=kd_%d_%x,hidden,password=*,IcfEnable`),
	ok(gServer, `tcp:port=5005`, `tcp:port=5005`),
	ok(gServer, `TCP:Port=51:60,HIDDEN,Password=abc123,IpVersion=6,icfenable`, `tcp:port=51:60,hidden,password=*,ipversion=6,IcfEnable`),
	ok(gServer, `tcp:port=5005,clicon=\\devbox,password=x1,ipversion=6`, `tcp:port=5005,clicon=devbox,password=*,ipversion=6`),
	ok(gServer, `com:port=COM2,baud=115200,channel=0`, `com:port=COM2,baud=115200,channel=0`),
	ok(gServer, `com:port=com2,baud=9600,channel=254,hidden,password=p`, `com:port=COM2,baud=9600,channel=254,hidden,password=*`),
	ok(gServer, `spipe:proto=tls1,certuser=My Cert,pipe=KernelPipe,hidden,password=pw`, `spipe:proto=tls1,certuser=My Cert,pipe=KernelPipe,hidden,password=*`),
	ok(gServer, `spipe:proto=TLS1,machuser=kdsrv,pipe=p`, `spipe:proto=tls1,machuser=kdsrv,pipe=p`),
	ok(gServer, `ssl:proto=tls1,certuser=abc,port=5006,hidden,password=pw`, `ssl:proto=tls1,certuser=abc,port=5006,hidden,password=*`),
	ok(gServer, `ssl:proto=tls1,machuser=abc,port=5006,clicon=10.0.0.2,password=pw`, `ssl:proto=tls1,machuser=abc,port=5006,clicon=10.0.0.2,password=*`),
	// More server forms.
	ok(gServer, `com:port=2,baud=57600,channel=7`, `com:port=COM2,baud=57600,channel=7`),
	ok(gServer, `com:port=\\.\COM10,baud=115200,channel=3`, `com:port=COM10,baud=115200,channel=3`),
	ok(gServer, `com:port=/dev/ttyUSB0,baud=115200,channel=1`, `com:port=/dev/ttyUSB0,baud=115200,channel=1`),
	ok(gServer, `tcp:port=5005,clicon=host,hidden`, `tcp:port=5005,clicon=host,hidden`),
	ok(gServer, `tcp:port=5:5`, `tcp:port=5`),
	ok(gServer, `tcp:port=65535,ipversion=4`, `tcp:port=65535,ipversion=4`),
	ok(gServer, ` tcp: port = 5005 , hidden `, `tcp:port=5005,hidden`),
	ok(gServer, `ssl:proto=tls1,certuser=x,port=1:65535,ipversion=6,IcfEnable`, `ssl:proto=tls1,certuser=x,port=1:65535,ipversion=6,IcfEnable`),
	ok(gServer, `tcp:port=5005,clicon=[::1]`, `tcp:port=5005,clicon=::1`),
	ok(gServer, `NPIPE:Pipe=KernelPipe`, `npipe:pipe=KernelPipe`),

	// Server errors: values.
	bad(gServer, `tcp:port=abc`, "port", "not a port number"),
	bad(gServer, `tcp:port=0`, "port", "outside 1-65535"),
	bad(gServer, `tcp:port=65536`, "port", "outside 1-65535"),
	bad(gServer, `tcp:port=-5`, "port", "not a port number"),
	bad(gServer, `tcp:port=60:51`, "port", "A greater than B"),
	bad(gServer, `tcp:port=51:`, "port", "both ports"),
	bad(gServer, `tcp:port=:60`, "port", "both ports"),
	bad(gServer, `tcp:port=1:2:3`, "port", "not a port number"),
	bad(gServer, `tcp:port=5005,hidden=3`, "hidden", "flag and takes no value"),
	bad(gServer, `tcp:port`, "port", "needs a value"),
	bad(gServer, `tcp:port=1,password=way2longpasswd`, "password", "longer than 12"),
	bad(gServer, `tcp:port=1,password=bad!pw`, "password", "alphanumeric"),
	bad(gServer, `tcp:port=1,password=`, "password", "needs a value"),
	bad(gServer, `tcp:port=1,password=*`, "password", "replace * with the real password"),
	bad(gServer, `npipe:pipe=my pipe`, "pipe", "space"),
	bad(gServer, `npipe:pipe="quoted"`, "pipe", "quotation mark"),
	bad(gServer, `npipe:pipe=a/b`, "pipe", "path separator"),
	bad(gServer, `npipe:pipe=\\.\pipe\x`, "pipe", "path separator"),
	bad(gServer, `npipe:pipe=a..b`, "pipe", "contains .."),
	bad(gServer, `npipe:pipe=`, "pipe", "empty"),
	bad(gServer, `npipe:pipe=%d%x%d`, "pipe", "more than two"),
	bad(gServer, `npipe:pipe=a%s`, "pipe", "not %d or %x"),
	bad(gServer, `npipe:pipe=a%`, "pipe", "not %d or %x"),
	bad(gServer, `com:port=COM1,baud=9600,channel=255`, "channel", "0 to 254"),
	bad(gServer, `com:port=COM1,baud=9600,channel=-1`, "channel", "0 to 254"),
	bad(gServer, `com:port=COM1,baud=0,channel=1`, "baud", "positive integer"),
	bad(gServer, `com:port=COM1,baud=fast,channel=1`, "baud", "positive integer"),
	bad(gServer, `com:port=LPT1,baud=9600,channel=1`, "port", "not a COM port"),
	bad(gServer, `com:port=COM0,baud=9600,channel=1`, "port", "not a COM port"),
	bad(gServer, `tcp:port=1,clicon=a b`, "clicon", "not a host name"),
	bad(gServer, `tcp:port=1,clicon=\\`, "clicon", "host name is empty"),
	bad(gServer, `tcp:port=1,ipversion=5`, "ipversion", "must be 6"),
	// Server errors: TLS.
	bad(gServer, `ssl:proto=ssl3,certuser=x,port=1`, "proto", "broken protocol"),
	bad(gServer, `ssl:proto=pct1,certuser=x,port=1`, "proto", "negotiates TLS 1.2 or TLS 1.3"),
	bad(gServer, `spipe:proto=SSL2,certuser=x,pipe=p`, "proto", "ssl2 is a broken protocol"),
	bad(gServer, `ssl:proto=tls13,certuser=x,port=1`, "proto", "unknown TLS protocol"),
	bad(gServer, `ssl:proto=tls1,certuser=a,machuser=b,port=1`, "machuser", "not both"),
	bad(gServer, `ssl:proto=tls1,port=1`, "certuser", "missing certificate"),
	bad(gServer, `spipe:proto=tls1,pipe=p`, "certuser", "certuser=Cert or machuser=Cert"),
	bad(gServer, `ssl:certuser=a,port=1`, "proto", "missing required key"),
	bad(gServer, `tcp:port=1,certuser=x`, "certuser", "TLS option"),
	bad(gServer, `npipe:pipe=x,proto=tls1`, "proto", "TLS option"),
	bad(gServer, `com:port=1,baud=1,channel=1,machuser=m`, "machuser", "TLS option"),
	bad(gServer, `ssl:proto=tls1,certuser=c,port=1,cafile=/ca.pem`, "cafile", "client option"),
	// Server errors: combinations and structure.
	bad(gServer, `tcp:hidden`, "port", "missing required key"),
	bad(gServer, `com:port=COM1,channel=1`, "baud", "missing required key"),
	bad(gServer, `com:port=COM1,baud=9600`, "channel", "missing required key"),
	bad(gServer, `tcp:port=1,port=2`, "port", "more than once"),
	bad(gServer, `tcp:port=1,Port=2`, "port", "more than once"),
	bad(gServer, `tcp:port=1,bogus=2`, "bogus", "unknown key"),
	bad(gServer, `npipe:pipe=x,ipversion=6`, "ipversion", "only for tcp and ssl"),
	bad(gServer, `com:port=COM1,baud=9600,channel=0,IcfEnable`, "icfenable", "no network port"),
	bad(gServer, `npipe:pipe=x,clicon=host`, "clicon", "only with tcp and ssl"),
	bad(gServer, `com:port=1,baud=9600,channel=0,clicon=h`, "clicon", "only with tcp and ssl"),
	bad(gServer, `tcp:server=h,port=1`, "server", "belongs to the client's -k"),
	bad(gServer, `tcp:port=51:60,clicon=h`, "port", "must give one port"),
	bad(gServer, `npipe:pipe=p,port=5`, "port", "uses pipe="),
	bad(gServer, `tcp:port=5,pipe=p`, "pipe", "only for npipe and spipe"),
	bad(gServer, `udp:port=1`, "", "unknown transport protocol"),
	bad(gServer, `port=1`, "", "missing protocol"),
	bad(gServer, ``, "", "empty specification"),
	bad(gServer, `tcp:port=1,,hidden`, "", "empty parameter"),
	bad(gServer, `tcp:port=1,`, "", "empty parameter"),
	bad(gServer, `tcp:port=1,{hidden`, "", "unbalanced braces"),
	bad(gServer, `tcp:port=1}`, "", "unbalanced braces"),
	bad(gServer, `tcp:=1`, "", "key or key=value"),
	bad(gServer, `t cp:port=1`, "", "letters and digits"),
	bad(gServer, "tcp:port=1\x00,hidden", "", "control character"),
	bad(gServer, `kdsrv:server=@{tcp:server=h,port=1}`, "", "smart client"),

	// Client transports.
	ok(gClient, `tcp:server=host,port=5005`, `tcp:server=host,port=5005`),
	ok(gClient, `tcp:server=\\host,port=5005,password=pw,ipversion=6`, `tcp:server=host,port=5005,password=*,ipversion=6`),
	ok(gClient, `tcp:clicon=host,port=51:60`, `tcp:port=51:60,clicon=host`),
	ok(gClient, `tcp:Port=53:60,Server=h`, `tcp:server=h,port=53:60`),
	ok(gClient, `npipe:server=h,Pipe=KernelPipe`, `npipe:server=h,pipe=KernelPipe`),
	ok(gClient, `com:port=com1,baud=115200,channel=0,password=a`, `com:port=COM1,baud=115200,channel=0,password=*`),
	ok(gClient, `ssl:proto=tls1,certuser=c,server=h,port=1`, `ssl:proto=tls1,certuser=c,server=h,port=1`),
	ok(gClient, `ssl:proto=tls1,server=h,port=1`, `ssl:proto=tls1,server=h,port=1`),
	ok(gClient, `ssl:proto=tls1,cafile=/etc/kdsrv/ca.pem,server=h,port=1`, `ssl:proto=tls1,cafile=/etc/kdsrv/ca.pem,server=h,port=1`),
	ok(gClient, `ssl:proto=tls1,thumbprint=01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef 01 23 45 67,server=h,port=1`,
		`ssl:proto=tls1,thumbprint=0123456789ABCDEF0123456789ABCDEF01234567,server=h,port=1`),
	ok(gClient, `ssl:proto=tls1,machuser=m,clicon=h,port=51:60`, `ssl:proto=tls1,machuser=m,port=51:60,clicon=h`),
	ok(gClient, `spipe:proto=tls1,certuser=c,server=\\h,pipe=p`, `spipe:proto=tls1,certuser=c,server=h,pipe=p`),
	bad(gClient, `tcp:port=1`, "server", "server=Host to connect"),
	bad(gClient, `tcp:server=a,clicon=b,port=1`, "clicon", "not both"),
	bad(gClient, `tcp:server=h`, "port", "missing required key"),
	bad(gClient, `tcp:server=h,port=1,hidden`, "hidden", "server option"),
	bad(gClient, `tcp:server=h,port=1,IcfEnable`, "icfenable", "server option"),
	bad(gClient, `npipe:server=h,pipe=kd_%d`, "pipe", "only the server expands"),
	bad(gClient, `npipe:pipe=x`, "server", "missing required key"),
	bad(gClient, `ssl:proto=tls1,certuser=a,cafile=/b,server=h,port=1`, "cafile", "at most one"),
	bad(gClient, `ssl:proto=tls1,thumbprint=xyz,server=h,port=1`, "thumbprint", "hexadecimal"),
	bad(gClient, `ssl:proto=tls1,thumbprint=0123,server=h,port=1`, "thumbprint", "40 hex digits"),
	bad(gClient, `ssl:proto=ssl3,server=h,port=1`, "proto", "broken protocol"),
	bad(gClient, `ssl:server=h,port=1`, "proto", "missing required key"),
	bad(gClient, `tcp:server=h,port=1,cafile=/ca.pem`, "cafile", "TLS option"),
	bad(gClient, `com:server=h,port=1,baud=1,channel=1`, "server", "no server host"),
	bad(gClient, `tcp:server=h,port=1,Password=*`, "password", "replace * with the real password"),
	bad(gClient, `tcp:server=h/x,port=1`, "server", "not a host name"),

	// trans= targets.
	ok(gTarget, `com:port=COM1,baud=115200`, `com:port=COM1,baud=115200`),
	ok(gTarget, `COM:PORT=com2,BAUD=115200`, `com:port=COM2,baud=115200`),
	ok(gTarget, `com:port=/dev/ttyS0,baud=9600`, `com:port=/dev/ttyS0,baud=9600`),
	ok(gTarget, `com:pipe,port=/tmp/vm.sock,resets=0,reconnect`, `com:pipe,port=/tmp/vm.sock,resets=0,reconnect`),
	ok(gTarget, `com:pipe,baud=115200,port=\\.\pipe\windbg,resets=0`, `com:pipe,port=\\.\pipe\windbg,baud=115200,resets=0`),
	ok(gTarget, `com:reconnect,pipe,port=\\vmhost\PIPE\com1`, `com:pipe,port=\\vmhost\PIPE\com1,reconnect`),
	ok(gTarget, `com:ipport=4445,port=127.0.0.1`, `com:ipport=4445,port=127.0.0.1`),
	ok(gTarget, `com:port=\\vmhost,ipport=4445`, `com:ipport=4445,port=vmhost`),
	ok(gTarget, `net:port=50000,key=1.2.3.4`, `net:port=50000,key=*`),
	ok(gTarget, `net:port=50000,key=1.Z.10.3w5e11264sgsf,target=192.168.0.9`, `net:port=50000,key=*,target=192.168.0.9`),
	ok(gTarget, `com:`, `com:`),
	ok(gTarget, `com:baud=115200`, `com:baud=115200`),
	ok(gTarget, `com:pipe`, `com:pipe`),
	ok(gTarget, `com:port=1`, `com:port=COM1`),
	ok(gTarget, `net:`, `net:`),
	bad(gTarget, `1394:channel=1`, "", "1394 kernel debug connections are not supported"),
	bad(gTarget, `usb:targetname=x`, "", "usb kernel debug connections are not supported"),
	bad(gTarget, `serial:port=1`, "", "unknown kernel debug connection type"),
	bad(gTarget, `com:port=COM1,baud=x`, "baud", "positive integer"),
	bad(gTarget, `com:pipe,ipport=1`, "ipport", "cannot be combined"),
	ok(gTarget, `com:port=COM1,resets=0`, `com:port=COM1,resets=0`),
	ok(gTarget, `com:ipport=5555,port=127.0.0.1,resets=3`, `com:ipport=5555,port=127.0.0.1,resets=3`),
	bad(gTarget, `com:port=COM1,reconnect`, "reconnect", "only to a VM pipe"),
	bad(gTarget, `com:ipport=5555,port=127.0.0.1,reconnect`, "reconnect", "only to a VM pipe"),
	bad(gTarget, `com:port=COM1,reconnect`, "reconnect", "only to a VM pipe"),
	bad(gTarget, `com:pipe,port=relative.sock`, "port", "not a pipe path"),
	bad(gTarget, `com:pipe,port=\\.\notpipe\x`, "port", "Windows pipe path"),
	bad(gTarget, `com:pipe,port=\\.\pipe\`, "port", "empty pipe name"),
	bad(gTarget, `com:pipe,resets=-1`, "resets", "non-negative integer"),
	bad(gTarget, `com:ipport=0,port=h`, "ipport", "outside 1-65535"),
	bad(gTarget, `com:ipport=1,port=a b`, "port", "not a host name"),
	bad(gTarget, `com:port=LPT1,baud=9600`, "port", "not a COM port"),
	bad(gTarget, `com:key=1.2.3.4`, "key", "belongs to net"),
	bad(gTarget, `com:pipe,target=1.2.3.4`, "target", "belongs to net"),
	bad(gTarget, `com:bogus=1`, "bogus", "unknown key"),
	bad(gTarget, `com:pipe=1`, "pipe", "flag"),
	bad(gTarget, `com:port`, "port", "needs a value"),
	bad(gTarget, `net:port=1,key=1.2.3`, "key", "four parts"),
	bad(gTarget, `net:port=1,key=1.2.3.4!`, "key", "base-36"),
	bad(gTarget, `net:port=1,key=1.2.3.3w5e11264sgsg`, "key", "2^64"),
	bad(gTarget, `net:port=1,key=12345678901234.1.1.1`, "key", "1 to 13 characters"),
	bad(gTarget, `net:port=1,key=1.2.3.4,target=host`, "target", "not an IP address"),
	bad(gTarget, `net:baud=1`, "baud", "belongs to com"),
	bad(gTarget, `net:port=1,reconnect`, "reconnect", "belongs to com"),
	bad(gTarget, `net:port=70000`, "port", "outside 1-65535"),

	// Whole -k values.
	ok(gConnect, `kdsrv:server=@{tcp:server=\\h,port=5005},trans=@{com:port=COM1,baud=115200}`,
		`kdsrv:server=@{tcp:server=h,port=5005},trans=@{com:port=COM1,baud=115200}`),
	ok(gConnect, `KDSRV:Trans=@{com:},Server=@{npipe:server=h,pipe=p,password=pw}`,
		`kdsrv:server=@{npipe:server=h,pipe=p,password=*},trans=@{com:}`),
	ok(gConnect, `kdsrv:server=@{ssl:proto=tls1,thumbprint=0123456789abcdef0123456789abcdef01234567,clicon=h,port=51:60},trans=@{net:port=50000,key=a.b.c.d}`,
		`kdsrv:server=@{ssl:proto=tls1,thumbprint=0123456789ABCDEF0123456789ABCDEF01234567,port=51:60,clicon=h},trans=@{net:port=50000,key=*}`),
	ok(gConnect, `kdsrv:server=@{tcp:Port=53:60,server=h},trans=@{com:pipe,port=/run/vm/com1,resets=0,reconnect}`,
		`kdsrv:server=@{tcp:server=h,port=53:60},trans=@{com:pipe,port=/run/vm/com1,resets=0,reconnect}`),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1}`, "trans", "missing trans="),
	bad(gConnect, `kdsrv:trans=@{com:}`, "server", "missing server="),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1},trans=@{com:port=COM1`, "", "unbalanced braces"),
	bad(gConnect, `kdsrv:server=tcp:server,trans=@{com:}`, "server", "must be a group"),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1}x,trans=@{com:}`, "server", "must be a group"),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=abc},trans=@{com:}`, "port", "in server=@{...}: not a port number"),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1},trans=@{1394:channel=1}`, "", "in trans=@{...}: 1394"),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1},trans=@{com:},foo=1`, "foo", "only server= and trans="),
	bad(gConnect, `kdsrv:server=@{a{b{c{d{e}}}}}`, "", "nested too deeply"),
	bad(gConnect, `tcp:server=h,port=1`, "", "starts with kdsrv:"),
	bad(gConnect, `kdsrv:server=@{tcp:server=h,port=1},trans=@{com:},trans=@{com:}`, "trans", "more than once"),
	bad(gConnect, `kdsrv:server=@{tcp:port=1,hidden},trans=@{com:}`, "hidden", "server option"),
}

func TestTable(t *testing.T) {
	t.Parallel()
	if len(table) < 80 {
		t.Fatalf("table has %d rows, want at least 80", len(table))
	}
	for _, r := range table {
		t.Run(r.g.String()+"/"+r.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseAs(r.g, r.in)
			if r.valid() {
				if err != nil {
					t.Fatalf("parse %q: unexpected error: %v", r.in, err)
				}
				if s := got.String(); s != r.want {
					t.Errorf("String() = %q, want %q", s, r.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parse %q = %q, want an error with key %q", r.in, got.String(), r.key)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if e.Key != r.key {
				t.Errorf("error key = %q, want %q (%v)", e.Key, r.key, err)
			}
			if !strings.Contains(err.Error(), r.frag) {
				t.Errorf("error %q lacks %q", err.Error(), r.frag)
			}
		})
	}
}

// TestRoundTrip proves Parse(Canonical(Parse(s))) == Parse(s) and that the
// canonical form is a fixed point for every valid row.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range table {
		if !r.valid() {
			continue
		}
		first, err := parseAs(r.g, r.in)
		if err != nil {
			t.Fatalf("%s %q: %v", r.g, r.in, err)
		}
		c := first.Canonical()
		second, err := parseAs(r.g, c)
		if err != nil {
			t.Errorf("%s %q: canonical %q does not parse: %v", r.g, r.in, c, err)
			continue
		}
		if d := cmp.Diff(first, second); d != "" {
			t.Errorf("%s %q: round trip through %q differs (-first +second):\n%s", r.g, r.in, c, d)
		}
		if c2 := second.Canonical(); c2 != c {
			t.Errorf("%s %q: canonical not stable: %q then %q", r.g, r.in, c, c2)
		}
	}
}

// TestSecretsNeverShown proves that passwords and KDNET keys appear neither
// in Error() nor in String(), nor in Error.Value, nor in Warnings().
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	const pw = "Zq9Secret"
	const key = "zq9kq.zq9kr.zq9ks.zq9kt"
	errInputs := []struct {
		g  grammar
		in string
	}{
		{gServer, "tcp:port=abc,password=" + pw},
		{gServer, "tcp:password=" + pw + ",port=0"},
		{gServer, "tcp:port=1,password=" + pw + "Long1"},
		{gServer, "tcp:port=1,password=" + pw + "!"},
		{gServer, "tcp:port=1,password=" + pw + " x"},
		{gServer, "tcp:port=1,Password = " + pw + ",bogus"},
		{gServer, "tcp:port=1,passwd=" + pw},
		{gServer, "tcp:port=1,password=" + pw + ",password=" + pw},
		{gServer, "tcp:port=1,password=" + pw + "{"},
		{gServer, "tcp:port=1,password=" + pw + "}"},
		{gServer, "npipe:pipe=a b,password=" + pw},
		{gServer, "com:port=COM1,baud=1,password=" + pw},
		{gClient, "tcp:port=1,password=" + pw},
		{gConnect, "kdsrv:server=@{tcp:server=h,port=1,password=" + pw + "},trans=@{com:port=LPT1}"},
		{gConnect, "kdsrv:server=@{tcp:server=h,port=1,password=" + pw + "!},trans=@{com:}"},
		{gConnect, "kdsrv:server=@{tcp:server=h,port=1,password=" + pw + "},trans=@{net:port=1,key=" + key + ",target=x}"},
		{gConnect, "kdsrv:server=@{tcp:server=h,port=1,password=" + pw + "},trans=@{net:port=1,key=" + key + ".zz}"},
		{gTarget, "net:port=0,key=" + key},
		{gTarget, "net:port=1,key=" + key + "!"},
		{gTarget, "net:port=1,key=" + key + ",key=" + key},
	}
	for _, c := range errInputs {
		_, err := parseAs(c.g, c.in)
		if err == nil {
			t.Errorf("%s %q: want an error", c.g, c.in)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, pw) || strings.Contains(msg, key) {
			t.Errorf("%s: error shows a secret: %s", c.g, msg)
		}
		var e *Error
		if errors.As(err, &e) && isSecretKey(e.Key) && e.Value != "" {
			t.Errorf("%s: Error.Value of key %q is %q, want empty", c.g, e.Key, e.Value)
		}
	}
	okInputs := []struct {
		g  grammar
		in string
	}{
		{gServer, "tcp:port=1,password=" + pw},
		{gServer, "tcp:port=1,clicon=h,hidden,password=" + pw},
		{gClient, "npipe:server=h,pipe=p,password=" + pw},
		{gConnect, "kdsrv:server=@{spipe:proto=tls1,server=h,pipe=p,password=" + pw + "},trans=@{net:port=1,key=" + key + "}"},
		{gTarget, "net:port=1,key=" + key},
	}
	for _, c := range okInputs {
		v, err := parseAs(c.g, c.in)
		if err != nil {
			t.Fatalf("%s %q: %v", c.g, c.in, err)
		}
		s := v.String()
		if strings.Contains(s, pw) || strings.Contains(s, key) {
			t.Errorf("%s: String() shows a secret: %s", c.g, s)
		}
		if cs := v.Canonical(); !strings.Contains(cs, pw) && !strings.Contains(cs, key) {
			t.Errorf("%s: Canonical() %q lost the secret", c.g, cs)
		}
		if tr, ok := v.(*Transport); ok {
			for _, w := range tr.Warnings() {
				if strings.Contains(w, pw) {
					t.Errorf("warning shows the password: %s", w)
				}
			}
		}
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string // fragments, one per warning, in order
	}{
		{`tcp:port=5005`, nil},
		{`tcp:port=5005,hidden`, nil},
		{`tcp:port=5005,clicon=h,hidden`, []string{"hidden has no effect with clicon"}},
		{`ssl:proto=tls1,certuser=c,port=1,clicon=h,hidden,IcfEnable`, []string{"hidden has no effect", "IcfEnable has no effect"}},
		{`npipe:pipe=p,password=pw`, []string{"not encrypted"}},
		{`spipe:proto=tls1,certuser=c,pipe=p,password=pw`, nil},
	}
	for _, tc := range tests {
		tr, err := ParseServerTransport(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		w := tr.Warnings()
		if len(w) != len(tc.want) {
			t.Errorf("%q: warnings %q, want %d", tc.in, w, len(tc.want))
			continue
		}
		for i := range w {
			if !strings.Contains(w[i], tc.want[i]) {
				t.Errorf("%q: warning %q lacks %q", tc.in, w[i], tc.want[i])
			}
		}
	}
}

func TestTransportAccessors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in           string
		tls, reverse bool
		port         PortRange
	}{
		{`tcp:port=51:60`, false, false, PortRange{51, 60}},
		{`tcp:port=5005,clicon=h`, false, true, PortRange{5005, 5005}},
		{`ssl:proto=tls1,certuser=c,port=7`, true, false, PortRange{7, 7}},
		{`spipe:proto=tls1,certuser=c,pipe=p`, true, false, PortRange{}},
	}
	for _, tc := range tests {
		tr, err := ParseServerTransport(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if tr.IsTLS() != tc.tls || tr.Reverse() != tc.reverse || tr.Port != tc.port {
			t.Errorf("%q: IsTLS=%v Reverse=%v Port=%v, want %v %v %v", tc.in, tr.IsTLS(), tr.Reverse(), tr.Port, tc.tls, tc.reverse, tc.port)
		}
	}
	if r := (PortRange{53, 60}); !r.IsRange() || r.String() != "53:60" {
		t.Errorf("PortRange{53,60}: IsRange=%v String=%q", r.IsRange(), r.String())
	}
	if r := (PortRange{5005, 5005}); r.IsRange() || r.String() != "5005" {
		t.Errorf("PortRange{5005,5005}: IsRange=%v String=%q", r.IsRange(), r.String())
	}
}

// TestParsedFields checks fields that String() alone does not pin down.
func TestParsedFields(t *testing.T) {
	t.Parallel()
	tr, err := ParseClientTransport(`ssl:proto=TLS1,thumbprint=` + "\u200e" + `ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01,server=\\[fe80::1],port=53:60,password=pw,ipversion=6`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Transport{Proto: SSL, TLSProto: "tls1", Thumbprint: "ABCDEF0123456789ABCDEF0123456789ABCDEF01",
		Server: "fe80::1", Port: PortRange{53, 60}, Password: "pw", IPVersion: 6}
	if d := cmp.Diff(want, tr); d != "" {
		t.Errorf("client ssl (-want +got):\n%s", d)
	}
	tg, err := ParseTarget(`com:pipe,port=/tmp/x`)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&Target{Kind: TargetPipe, Port: "/tmp/x", Resets: -1}, tg); d != "" {
		t.Errorf("pipe target (-want +got):\n%s", d)
	}
	tg, err = ParseTarget(`net:port=50000,key=1.Z.10.3w5e11264sgsf,target=::1`)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&Target{Kind: TargetNet, NetPort: 50000, Key: "1.z.10.3w5e11264sgsf", TargetIP: "::1", Resets: -1}, tg); d != "" {
		t.Errorf("net target (-want +got):\n%s", d)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	e := &Error{Input: "tcp:port=abc", Key: "port", Value: "abc", Msg: "not a port number", Hint: "give 1-65535"}
	if got, want := e.Error(), `invalid spec "tcp:port=abc": port="abc": not a port number; give 1-65535`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Input: "x", Key: "password", Value: "leak", Msg: "bad"}
	if strings.Contains(e.Error(), "leak") {
		t.Errorf("Error() shows a password value: %s", e.Error())
	}
	e = &Error{Input: "a\x00b\x1b[31m", Msg: "bad"}
	if got, want := e.Error(), `invalid spec "a\x00b\x1b[31m": bad`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Input: "x", Msg: "empty"}
	if got, want := e.Error(), `invalid spec "x": empty`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"tcp:port=1,password=abc", "tcp:port=1,password=*"},
		{"tcp:Password=abc,port=1", "tcp:Password=*,port=1"},
		{"kdsrv:server=@{tcp:password=abc},trans=@{net:key=1.2.3.4}", "kdsrv:server=@{tcp:password=*},trans=@{net:key=*}"},
		{"tcp:monkey=1,passwd=x", "tcp:monkey=1,passwd=*"},
		{"tcp:password=a}b,port=1", "tcp:password=*,port=1"},
		{"no secrets here", "no secrets here"},
	}
	for _, tc := range tests {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
