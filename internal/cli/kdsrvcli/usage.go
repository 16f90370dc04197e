package kdsrvcli

// Usage is the top of kdsrv's --help text; spec.ServerHelp follows it.
const Usage = `kdsrv — KD connection server

Usage:
  kdsrv -t TRANSPORT [-t TRANSPORT ...] [options]
  kdsrv -dry-run -t TRANSPORT ...
  kdsrv cert create NAME | kdsrv cert list   certificates for ssl/spipe (kdsrv cert -h)
  kdsrv completion bash|zsh|fish             shell completion, e.g. source <(kdsrv completion bash)
  kdsrv -version                             program, version, commit, Go version, OS/arch

kdsrv runs on the machine that owns a kernel debug link (serial cable, a
VM's serial pipe, KDCOM over TCP) and lets remote kdclient users debug it.
Each -t adds a transport clients connect over; one process may serve
several. WinDbg and kd do not connect to this server with their own
-k kdsrv:...: run kdclient -listen on the debugger's machine and point the
debugger at it (-k com:pipe,port=\\.\pipe\NAME or
-k com:ipport=PORT,port=127.0.0.1); see kdclient -h.

When a listener is ready kdsrv prints one line per transport on standard
output, for example:
  kdsrv: listening on tcp:port=53:60
(the port actually used, then the end of the range, as -QR shows it), or
for a reverse connection "kdsrv: connecting to the client of tcp:clicon=...".
SIGINT or SIGTERM stops the server cleanly: sessions end, targets are
released, and kdsrv exits 0.

Options:
  -t TRANSPORT     a transport (see the forms below); repeatable
  -allow PATTERN   allow clients to open this target link; repeatable.
                   Without -allow only local serial devices may be opened
                   (/dev/ttyS*, /dev/ttyUSB*, /dev/ttyACM*, COMn). Patterns:
                     /path/glob         serial devices or VM pipe sockets,
                                        e.g. -allow '/run/vm/*.sock'
                     HOST:PORT, HOST:*  com:ipport targets, e.g. 127.0.0.1:*
                     net:PORT, net:*    KDNET UDP ports
  -password-file FILE
                   the password of every -t that gives no password=: the
                   first line of FILE, which only its owner may read (kdsrv
                   refuses it otherwise; chmod 600 FILE). password= in -t
                   is visible to every local user (ps, /proc/PID/cmdline)
                   while kdsrv runs, and kdsrv warns about it. To serve a
                   transport without a password beside protected ones, run
                   it in a second kdsrv
  -bind ADDR       listen for tcp/ssl clients on this address only
                   (default: every interface, like the original)
  -allow-endpsrv   let clients stop the server (kdclient ... endpsrv)
  -takeover-any    let any client take a target over (kdclient -takeover).
                   By default only a client whose transport has every
                   protection the owner's had (a password, TLS) may take
                   it over
  -auth-free-failures N
                   failed password attempts in a row a client address may
                   make before it has to wait (default 4); each further
                   failure doubles the wait from 2 s up to
  -auth-backoff-max D
                   (default 60s). Attempts during the wait are refused with
                   "too many failed attempts; try again in N s"
  -auth-failures-per-second N
                   server-wide ceiling on failed password attempts (default
                   10); addresses that authenticated within the last hour
                   are exempt. Failures and refusals are logged as warnings
  -max-preauth N   connections that have not authenticated yet, in all
                   (default 512, or a quarter of the descriptor limit)
  -max-preauth-per-source N
                   ... from one address (default 16); more are refused as
                   busy. A negative N switches a limit off
  -clicon-retry    reverse connections (clicon=): keep dialing the client
                   after a refused or broken connection instead of exiting
  -qr-port N       answer kdclient -QR queries on UDP port N (default
                   50100, 0 = never answer). Only servers running as root
                   (elevated on Windows) are listed, and never hidden or
                   clicon transports
  -no-mdns         do not announce this server on the local network by
                   multicast DNS (kdclient -QR -browse)
  -dry-run         parse and validate every -t, print each normalised, exit
  -log-level L      what to log on standard error: debug, info (default),
                   warn or error. At info: listeners, each client connected,
                   authenticated or refused (its address or, on a local
                   pipe, its process; transport; reason), sessions opened,
                   released and taken over, targets opened and lost, and
                   shutdown; warnings for trouble such as failed accepts.
                   Repeated lines are limited to a few a second, so a flood
                   cannot fill a disk. Passwords and keys are never logged
  -log-format F    text (default, also under a service manager) or json:
                   one JSON object per line with time, level, msg and the
                   event's attributes (session, target_id, from, ...)
  -v               the same as -log-level debug
  -version         print the version and exit (also --version)
  -metrics ADDR    serve Prometheus metrics at http://ADDR/metrics (off
                   unless given). Bind it to loopback, e.g.
                   -metrics 127.0.0.1:9464: the page names targets and
                   counts clients, and has no password of its own
  -trace FILE      write a decoded line for every KD packet and link event
                   (the server-target and bridge-server hops: packet type,
                   id, API and status, memory addresses and sizes, state
                   changes, RESET, RESEND, break-in, console text) to FILE;
                   - is standard error. Never holds passwords or keys
  -trace-format F  text (default) or json (one object per line)

Target links opened for clients take omitted settings from this machine's
environment: _NT_DEBUG_PORT and _NT_DEBUG_BAUD_RATE (see the trans= forms
in kdclient -h).

Passwords on tcp, npipe and com are never sent over the network (a mutual
challenge-response proves them), but those transports are not encrypted:
anyone on the path can read the debugging session. Use ssl or spipe for a
private session.

`
