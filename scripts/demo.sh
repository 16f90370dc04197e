#!/usr/bin/env bash
# The whole kdsrv path with no hardware: a simulated Windows target on a
# unix socket (like a VM's serial pipe), a real kdsrv on loopback TCP, and a
# kdclient session running commands against the target through the server.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d "${TMPDIR:-/tmp}/kdsrv-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT

echo "== building kdsrv, kdclient, kdtarget into $bin"
go build -o "$bin/" ./cmd/kdsrv ./cmd/kdclient ./cmd/kdtarget

. scripts/lib.sh

sock="$bin/vm.sock"
echo "== starting the simulated target (kdtarget) on unix:$sock"
"$bin/kdtarget" -listen "unix:$sock" -dbgprint 200ms >"$bin/target.out" 2>&1 &
pids+=($!)
wait_line "$bin/target.out" "listening"
cat "$bin/target.out"

echo "== starting kdsrv on loopback, allowing that target"
"$bin/kdsrv" -t tcp:port=50500:50599 -bind 127.0.0.1 -allow "$bin/*.sock" >"$bin/kdsrv.out" 2>&1 &
pids+=($!)
wait_line "$bin/kdsrv.out" "listening on tcp"
cat "$bin/kdsrv.out"
port=$(sed -n 's/.*listening on tcp:port=\([0-9]*\).*/\1/p' "$bin/kdsrv.out" | head -1)

k="kdsrv:server=@{tcp:server=127.0.0.1,port=$port},trans=@{com:pipe,port=$sock}"
run() {
	echo
	echo "\$ kdclient -k '$k' $*"
	"$bin/kdclient" -k "$k" "$@"
}
run version | tee "$bin/version.out"
# The kernel loads at a new address every boot (KASLR), as Windows does:
# read its image header where GetVersion says it is.
kernbase=$(sed -n 's/^KernBase \([0-9a-fA-F]*\).*/\1/p' "$bin/version.out")
[ -n "$kernbase" ] || { echo "demo: no KernBase in the version output" >&2; exit 1; }
run regs
run read "$kernbase" 64
run write ffffa00000000000 4b44535256
run read ffffa00000000000 16
run go
echo
echo "\$ kdclient -k '...' dbgprint   (the target's DbgPrint output, for 1 s)"
timeout -s INT 1 "$bin/kdclient" -k "$k" dbgprint || true
run break
echo
echo "== done: the target, kdsrv and kdclient ran with no hardware."
