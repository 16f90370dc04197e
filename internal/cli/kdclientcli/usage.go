package kdclientcli

// Usage is kdclient's --help text.
const Usage = `kdclient — smart client for a KD connection server (kdsrv)

Usage:
  kdclient -k 'kdsrv:server=@{<transport>},trans=@{<target>}' [options] COMMAND [ARGS]
  kdclient -k 'kdsrv:server=@{<transport>},trans=@{<target>}' -listen ENDPOINT [options]
  kdclient -QR [\\Host[:PORT]] [-json] [-qr-port N] [-timeout D]
  kdclient -QR -browse [-json]
  kdclient -dry-run -k '...'
  kdclient completion bash|zsh|fish    shell completion, e.g. source <(kdclient completion bash)
  kdclient -version                    program, version, commit, Go version, OS/arch

The first form runs one built-in command against the remote target; the
second bridges the remote target to a local debugger; -QR lists the KD
connection servers running on a host.

Commands:
  version              target version: build, machine, kernel base
  regs [-cpu N]        registers of a processor (default 0)
  read ADDR LEN        hex dump of LEN bytes of virtual memory at ADDR
  write ADDR HEX       write bytes (hex string, e.g. 90cc) at ADDR
  break                stop the target (break-in) and show where it stopped
  go                   resume the target
  dbgprint             stream the target's DbgPrint output until Ctrl-C
  console              stream the text the target writes on its line outside
                       KD packets (boot manager, firmware, a hypervisor's
                       messages) until Ctrl-C: first what kdsrv kept (the
                       last 64 KiB), then live. It only watches: no takeover
                       needed, the target is neither stopped nor reset, and
                       a debugger may use the target meanwhile. -json: one
                       JSON object per chunk
  dump ADDR LEN FILE   copy LEN bytes at ADDR to FILE (progress on a terminal).
                       FILE is replaced only by a complete dump; an
                       interrupted (exit 130) or failed one leaves it as it was
  endpsrv              ask the server to shut down (only if kdsrv was started
                       with -allow-endpsrv)
  ADDR is hexadecimal (0x prefix and WinDbg's backtick separator allowed); LEN is decimal
  or 0x-hex. Commands stop a running target to read it and leave it stopped;
  'go' resumes it.

Bridge endpoints (-listen), each a local KDCOM endpoint an unmodified
debugger attaches to as if it were a VM's serial pipe:
  unix:PATH            AF_UNIX stream socket: radare2 -d winkd:///PATH
  tcp:HOST:PORT        TCP: kd/WinDbg -k com:ipport=PORT,port=HOST
  npipe:NAME           a named pipe: kd/WinDbg -k com:pipe,port=\\.\pipe\NAME
                       (Windows; elsewhere a unix socket in the pipe directory)
  pty                  a pseudo-terminal; its path is printed (Linux, macOS)
  Debuggers may detach and re-attach; each new one gets the target's state.
  WinDbg and kd reach a kdsrv only this way: their own -k kdsrv:... speaks
  Microsoft's protocol, not kdsrv's, so point them at the bridge with
  -k com:pipe,port=\\.\pipe\NAME or -k com:ipport=PORT,port=127.0.0.1.
  One debugger at a time: a new connection replaces the current one. A unix
  socket left by a bridge that died is replaced; a live one is refused. A
  failing accept (e.g. out of file descriptors) is now retried after a short
  pause instead of ending the bridge. A pty has one device: the next
  debugger is served once the last one has closed it, and is now served
  afresh like a new socket connection (its KD link starts anew; before,
  one link ran on across the debuggers that opened the pty).

Options:
  -k SPEC        the server and target, in WinDbg's -k kdsrv:... grammar
                 (put it in single quotes: bash and zsh expand braces)
  -listen EP     run as a bridge on endpoint EP (see above)
  -takeover      open the target even if another client has it
  -cache         on by default; -cache=false turns it off. While the target
                 is halted, reads the debugger repeats (virtual memory it
                 read before, GetVersion, register contexts, control space)
                 are answered here without a network round trip. Only what
                 the debugger asked for is kept, never I/O space, MSRs,
                 bus data or physical memory, and everything is dropped on
                 any write, breakpoint, continue, state change, RESET or
                 target restart (docs/benchmarks.md)
  -readahead     let kdsrv read ahead of sequential virtual-memory reads
                 (dumps) and answer them here without a network round trip;
                 it reads memory before the debugger asks, so leave it off
                 when reading device memory with read side effects
  -timeout D     how long to wait for the server and for the target to stop
                 (default 10s)
  -wait D        reverse connections (server=@{tcp:clicon=...}): how long to
                 wait for kdsrv to connect (default 0: until interrupted)
  -cpu N         processor for regs (default 0)
  -json          machine-readable output (one JSON object per line)
  -trace FILE    write a decoded line for every KD packet and link event
                 of the session to FILE (- = standard error): the
                 bridge-server hop and the debugger-bridge hop (commands
                 and -listen alike); packet type, id, API and status,
                 memory addresses and sizes, state changes, RESET, RESEND,
                 break-in, read-ahead hits
  -trace-format F
                 text (default) or json (one object per line)
  -QR            list servers on a host (\\ before the host is optional;
                 no host = this machine); with -browse, servers announced
                 on the local network by mDNS. Only servers running as
                 root (elevated on Windows) are listed, never hidden ones
  -qr-port N     UDP port the host answers -QR on (default 50100)
  -password-file FILE
                 the password of server=@{...}, from the first line of FILE,
                 which only its owner may read (chmod 600 FILE). Without it
                 and without password= in -k, kdclient takes the password
                 from the KDSRV_PASSWORD environment variable, or asks on
                 the terminal (no echo) when the server wants one
  -kdnet-key-file FILE
                 the KDNET key of a trans=@{net:...} that gives no key=,
                 from the first line of FILE (chmod 600 FILE); else from
                 the KDSRV_KDNET_KEY environment variable
  -insecure-send-kdnet-key
                 send a KDNET key to kdsrv over tcp, npipe or com, which do
                 not encrypt (anyone on the path could read it). Without
                 it kdclient refuses: connect over ssl or spipe instead
  -keep-partial  dump: keep what an interrupted or failed dump read, as
                 FILE.partial (default: removed)
  -dry-run       parse and validate -k, print it normalised, and exit
  -log-level L   what to log on standard error: debug, info (default),
                 warn or error; at info a bridge logs its session and each
                 debugger attaching and detaching
  -log-format F  text (default) or json: one JSON object per line with
                 time, level, msg and attributes. With -json or
                 -log-format json, errors are JSON objects too
  -v             the same as -log-level debug
  -version       print the version and exit (also --version); with -json
                 as a JSON object

Secrets: password= and key= in -k are visible to every local user (ps,
/proc/PID/cmdline) while kdclient runs, and kdclient warns about them; use
-password-file, -kdnet-key-file or the environment variables instead.

`
