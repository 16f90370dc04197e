#!/usr/bin/env bash
# r2-wan-attach.sh — time radare2 attaching to a simulated Windows 10 1903
# kernel (kdtarget -build 18362) across an emulated WAN, once through a
# byte relay (socat on both sides of the WAN) and once through kdsrv and the
# kdclient bridge (cache on, then off). Local measurement for
# docs/benchmarks.md; not run in CI. Everything listens on loopback only and
# is stopped on exit.
#
# Usage: scripts/r2-wan-attach.sh [RTT] [RUNS]     (default 50ms, 3)
# Needs: go, socat, r2 (radare2 5.9 with winkd, see docs/benchmarks.md).
set -euo pipefail
RTT=${1:-50ms}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=$(mktemp -d /tmp/r2wan.XXXXXX)
PIDS=()
# Loopback ports for the relays, the WAN proxies and kdsrv: four from a
# base that depends on this shell's pid, so that runs side by side differ.
P=$((30000 + ($$ % 3000) * 4))
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
for p in socat r2; do
	command -v "$p" >/dev/null || { echo "r2-wan-attach: $p is not installed" >&2; exit 2; }
done
(cd "$ROOT" && for p in kdtarget kdsrv kdclient kdbench; do go build -o "$D/$p" "./cmd/$p"; done)

bg() { "$@" >>"$D/log" 2>&1 & PIDS+=($!); }
wait_for() { # wait_for unix|tcp ADDR
	for _ in $(seq 100); do
		if [ "$1" = unix ] && [ -S "$2" ]; then return 0; fi
		if [ "$1" = tcp ] && (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "r2-wan-attach: $2 did not come up; log:" >&2; cat "$D/log" >&2; exit 1
}
# The WAN: kdbench's emulator as a TCP proxy (no tc, nothing on the shared
# loopback device).
wan() { bg "$D/kdbench" -wan-proxy "127.0.0.1:$1=127.0.0.1:$2" -rtt "$RTT" -jitter 2ms -rate 10mbit -loss 0; wait_for tcp "$1"; }

# The expected answers: rip is the break address, KernBase+0x3f0000 (KernBase
# is 2 MiB aligned and random per boot), rsp the top of CPU 0's stack, and
# the code at rip is int3; ret; int3 padding.
R2CMD='dr rip; dr rsp; px 16 @ rip'
check() { # check FILE PATH
	local rip rsp
	rip=$(sed -n 1p "$1"); rsp=$(sed -n 2p "$1")
	if [ $((rip & 0x1fffff)) -ne $((0x1f0000)) ] || [ "$rsp" != 0xfffff80265a0ffd8 ] ||
		! grep -q "^$rip  ccc3 cccc cccc cccc 0f1f 8400" "$1"; then
		echo "r2-wan-attach: radare2 through $2 shows wrong registers or memory:" >&2; cat "$1" >&2; exit 1
	fi
}
attach() { # attach SOCKET -> prints seconds; output in $D/r2.out
	local t0 t1
	t0=$(date +%s.%N)
	timeout 120 r2 -e scr.color=0 -a x86 -b 64 -D winkd -qc "$R2CMD" -d "winkd://$1" >"$D/r2.out" 2>"$D/r2.err" || true
	t1=$(date +%s.%N)
	if ! grep -q "Sync done" "$D/r2.err" || ! grep -q "^0x" "$D/r2.out"; then
		echo "r2-wan-attach: radare2 did not attach through $1:" >&2; cat "$D/r2.err" "$D/r2.out" >&2; exit 1
	fi
	echo "$t1 - $t0" | bc
}
target() { # target NAME -> a fresh simulated kernel on $D/NAME.sock
	bg "$D/kdtarget" -listen "unix:$D/$1.sock" -build 18362
	wait_for unix "$D/$1.sock"
}

echo "radare2 attach over an emulated WAN: rtt $RTT, jitter ±2ms, 10 mbit; $RUNS runs each"
for run in $(seq "$RUNS"); do
	# Byte relay: r2 -> socat (unix -> tcp) -> WAN -> socat (tcp -> unix) -> target.
	target relay$run
	bg socat TCP-LISTEN:$P,bind=127.0.0.1,reuseaddr,fork "UNIX-CONNECT:$D/relay$run.sock"; wait_for tcp $P
	wan $((P + 1)) $P
	bg socat "UNIX-LISTEN:$D/r2relay$run.sock,fork" TCP:127.0.0.1:$((P + 1)); wait_for unix "$D/r2relay$run.sock"
	relay=$(attach "$D/r2relay$run.sock"); check "$D/r2.out" "the byte relay"; relay_out=$(cat "$D/r2.out")
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=()

	# kdsrv: r2 -> kdclient bridge -> WAN -> kdsrv -> target.
	for cache in true false; do
		target kd$run$cache
		bg "$D/kdsrv" -t tcp:port=$((P + 2)) -bind 127.0.0.1 -allow "$D/*.sock"; wait_for tcp $((P + 2))
		wan $((P + 3)) $((P + 2))
		bg "$D/kdclient" -cache=$cache -k "kdsrv:server=@{tcp:server=127.0.0.1,port=$((P + 3))},trans=@{com:pipe,port=$D/kd$run$cache.sock}" -listen "unix:$D/bridge$run$cache.sock"
		wait_for unix "$D/bridge$run$cache.sock"
		t=$(attach "$D/bridge$run$cache.sock")
		check "$D/r2.out" "kdsrv (cache $cache)"
		if [ $cache = true ]; then cached=$t; else uncached=$t; fi
		for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=()
	done
	printf 'run %d: byte relay %.2fs, kdsrv+bridge cache on %.2fs (%.2fx), cache off %.2fs (%.2fx)\n' \
		"$run" "$relay" "$cached" "$(echo "$cached / $relay" | bc -l)" "$uncached" "$(echo "$uncached / $relay" | bc -l)"
done
echo "radare2 showed through the byte relay (every path checked the same way):"; echo "$relay_out"
