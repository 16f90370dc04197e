package spec

// ServerHelp is the --help text of kdsrv: every -t form with its parameters
// and examples. The seven synopsis lines are those of the original tool.
const ServerHelp = `Usage: kdsrv -t <transport> [-t <transport> ...]

kdsrv is a KD connection server: it lets smart clients (kdclient) on other
machines use the kernel debug links (serial ports, VM pipes, KDNET) of this
machine. Each -t adds one transport; one process serves all of them.

Transports:

kdsrv -t npipe:pipe=PipeName[,hidden][,password=Password][,IcfEnable]
kdsrv -t tcp:port=Socket[,hidden][,password=Password][,ipversion=6][,IcfEnable]
kdsrv -t tcp:port=Socket,clicon=Client[,password=Password][,ipversion=6]
kdsrv -t com:port=COMPort,baud=BaudRate,channel=COMChannel[,hidden][,password=Password]
kdsrv -t spipe:proto=Protocol,{certuser=Cert|machuser=Cert},pipe=PipeName[,hidden][,password=Password]
kdsrv -t ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket[,hidden][,password=Password]
kdsrv -t ssl:proto=Protocol,{certuser=Cert|machuser=Cert},port=Socket,clicon=Client[,password=Password]

Protocol names and keys are case-insensitive.

Parameters:
  pipe=PipeName      npipe, spipe: the pipe name; no spaces, quotes, / \ or "..".
                     A first %d or %x is replaced by the process id, a second by
                     the thread id. Outside Windows the pipe is a unix socket in
                     $XDG_RUNTIME_DIR/kdsrv/ (/run/kdsrv/pipes/ for root;
                     KDSRV_PIPE_DIR overrides, KDSRV_PIPE_MODE=0660 widens).
  port=Socket        tcp, ssl: a port 1-65535 or a range A:B; the first free port
                     of the range is used and -QR shows it as Used:B.
                     With clicon= the server must give the one port the client
                     listens on.
  clicon=Client      tcp, ssl: reverse connection; the server dials the client
                     (host name or IP address, leading \\ optional). One client
                     only; never listed by -QR.
  port=COMPort       com: COM2, com2, 2 or a device path such as /dev/ttyUSB0
                     (on Linux COMn is /dev/ttyS(n-1)).
  baud=BaudRate      com: any baud rate the device supports.
  channel=COMChannel com: 0-254; several channels share one serial line.
  proto=Protocol     ssl, spipe: tls1 (negotiates TLS 1.2 or TLS 1.3). pct1, ssl2
                     and ssl3 are broken protocols and are refused.
  certuser=Cert      ssl, spipe: certificate from the user's store (Linux:
                     ~/.config/kdsrv/certs/), by subject name or SHA-1 thumbprint.
  machuser=Cert      ssl, spipe: certificate from the machine store (Linux:
                     /etc/kdsrv/certs/). Give exactly one of certuser=, machuser=.
  hidden             not listed by -QR discovery (no effect with clicon=).
  password=Password  1 to 12 letters or digits. The password is never sent (the
                     client proves it knows it), but tcp, npipe and com sessions
                     are not encrypted: use ssl or spipe for privacy.
  ipversion=6        tcp, ssl: IPv6 only (ipversion=4: IPv4 only; default: both).
  IcfEnable          tcp, npipe (and ssl, spipe): open the firewall for the port
                     (npipe: 139 and 445). The rule is logged and not removed.

Examples:
  kdsrv -t tcp:port=5005
  kdsrv -t tcp:port=51:60,password=Secret1,IcfEnable
  kdsrv -t 'tcp:port=5005,clicon=\\devbox'
  kdsrv -t 'npipe:pipe=kd_%d_%x,hidden'
  kdsrv -t com:port=COM2,baud=115200,channel=0
  kdsrv -t ssl:proto=tls1,machuser=kdsrv.example.com,port=5006
  kdsrv -t spipe:proto=tls1,certuser=0123456789ABCDEF0123456789ABCDEF01234567,pipe=KernelPipe
`

// ClientHelp is the --help text of kdclient's -k: the server=@{...} forms,
// the trans=@{...} forms and the environment variables the server honours.
const ClientHelp = `Usage: kdclient -k kdsrv:server=@{<transport>},trans=@{<target>} [mode]

server=@{<transport>} says how to reach the KD connection server (kdsrv):
  tcp:server=Host,port=N[,password=P][,ipversion=6]
  tcp:clicon=Host,port=N|A:B[,password=P][,ipversion=6]
        (reverse: this client listens on port N, or the first free port of
        A:B, and waits for the server on Host to connect)
  npipe:server=Host,pipe=Name[,password=P]
  com:port=COMPort,baud=N,channel=N[,password=P]
  ssl:proto=tls1[,certuser=C|machuser=C|cafile=PATH|thumbprint=HEX],server=Host,port=N[,password=P]
  ssl:proto=tls1[,...],clicon=Host,port=N|A:B[,password=P]
  spipe:proto=tls1[,certuser=C|machuser=C|cafile=PATH|thumbprint=HEX],server=Host,pipe=Name[,password=P]
A leading \\ before Host is optional. port=A:B as shown by -QR (e.g. Port=53:60)
connects to port A. The server's certificate is checked against cafile= (PEM
CA certificates), a pinned SHA-1 thumbprint=, the certificate named by
certuser=/machuser=, or, with none of these, the system roots.

trans=@{<target>} is the kernel debug connection the server opens (WinDbg -k):
  com:port=COMn|/dev/ttyX,baud=N               a real serial port
  com:pipe,port=PATH[,resets=N][,reconnect]    a VM serial pipe (a unix socket
                                               path, or \\.\pipe\Name on Windows)
  com:ipport=PORT,port=HOST                    KDCOM over TCP
  resets=N (any com:) bounds the RESETs kdsrv sends while synchronising with
  the target (about one a second); resets=0 sends them without limit.
  net:port=N,key=a.b.c.d[,target=IP]           KDNET over UDP
1394: and usb: connections are not supported.

Omitted trans= values are taken from the server machine's environment:
  _NT_DEBUG_PORT       port= of a serial target, of a bare com: and of com:pipe
  _NT_DEBUG_BAUD_RATE  baud= of a serial target
  _NT_DEBUG_BUS        1394 is refused (not supported)
net: targets and ipport= take nothing from the environment.

Examples (single quotes keep bash and zsh from expanding the braces):
  kdclient -k 'kdsrv:server=@{tcp:server=\\debughost,port=5005},trans=@{com:port=COM1,baud=115200}'
  kdclient -k 'kdsrv:server=@{tcp:server=debughost,port=53:60,password=Secret1},trans=@{com:}'
  kdclient -k 'kdsrv:server=@{tcp:clicon=debughost,port=51:60},trans=@{com:pipe,port=/run/vm/com1.sock,resets=0,reconnect}'
  kdclient -k 'kdsrv:server=@{npipe:server=debughost,pipe=KernelPipe},trans=@{com:ipport=4445,port=127.0.0.1}'
  kdclient -k 'kdsrv:server=@{ssl:proto=tls1,cafile=/etc/kdsrv/ca.pem,server=debughost,port=5006},trans=@{net:port=50000,key=1.2.3.4}'
`
