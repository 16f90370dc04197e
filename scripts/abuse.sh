#!/usr/bin/env bash
# Password guessing and a pre-authentication flood against a real kdsrv on
# loopback, with the figures docs/security.md quotes:
#
#  1. guessing: eight wrong passwords in a row from one address (kdclient,
#     password from KDSRV_PASSWORD): the time and outcome of each attempt,
#     the warning lines kdsrv wrote at its default log level, and how long
#     after the last wrong attempt the right password works again;
#  2. flood: thousands of half-open connections from 127.0.0.2 held open
#     (scripts/flood), while a client from 127.0.0.3 authenticates and runs
#     a command, and kdclient (from 127.0.0.1) runs "version" against the
#     simulated target; the server's open descriptors during the flood.
#
# Linux (binds 127.0.0.2 and 127.0.0.3, reads /proc); about two minutes.
# Every loop is bounded. Exits 1 when a figure misses its target.
set -euo pipefail
cd "$(dirname "$0")/.."

flood_n=${FLOOD_N:-5000}
work=$(mktemp -d "${TMPDIR:-/tmp}/kdsrv-abuse.XXXXXX")
declare -A pid
failed=0
cleanup() {
	{
		for p in "${pid[@]}"; do kill "$p" || true; done
		wait || true
	} 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/" ./cmd/kdsrv ./cmd/kdclient ./cmd/kdtarget ./scripts/flood
. scripts/lib.sh
check() { # TEXT OK: print a result line; OK=0 means the target was met
	if [ "$2" = 0 ]; then echo "  ok    $1"; else echo "  FAIL  $1"; failed=1; fi
}

sock="$work/kd.sock"
"$work/kdtarget" -listen "unix:$sock" >"$work/target.log" 2>&1 &
pid[target]=$!
wait_line "$work/target.log" "listening on"

umask 077
echo "Right2guess" >"$work/pw"
# ulimit -n: enough for the flood's refusals, small enough to matter.
(ulimit -n 4096 && exec "$work/kdsrv" -t tcp:port=47300:47399 -password-file "$work/pw" -bind 127.0.0.1 -allow "$work/*.sock") \
	>"$work/kdsrv.out" 2>"$work/kdsrv.log" &
pid[server]=$!
wait_line "$work/kdsrv.out" "listening on tcp"
port=$(sed -n 's/.*listening on tcp:port=\([0-9]*\).*/\1/p' "$work/kdsrv.out" | head -1)
k="kdsrv:server=@{tcp:server=127.0.0.1,port=$port},trans=@{com:pipe,port=$sock}"
kdc() { "$work/kdclient" -timeout 10s -k "$k" "$@"; }

echo "== 1. eight wrong passwords in a row from 127.0.0.1"
late=0
for i in $(seq 8); do
	t0=$(now_ms)
	set +e
	KDSRV_PASSWORD=wrong0 kdc version >"$work/guess.out" 2>&1
	rc=$?
	set -e
	ms=$(($(now_ms) - t0))
	msg=$(grep -o 'access denied\|too many failed attempts[^)]*' "$work/guess.out" | head -1)
	printf '  attempt %d: %5d ms, exit %d: %s\n' "$i" "$ms" "$rc" "${msg:-$(head -c 200 "$work/guess.out")}"
	if [ "$i" -ge 5 ]; then
		late=$((late + ms))
		case $msg in "too many failed attempts"*) refused5=1 ;; *) refused5=0 ;; esac
		[ "$refused5" = 1 ] || all_refused=no
	fi
done
last_wrong=$(now_ms)
check "attempts 5-8 refused as too many (${all_refused:-yes}), or took >= 4 s in all (${late} ms)" \
	$([ "${all_refused:-yes}" = yes ] || [ "$late" -ge 4000 ]; echo $?)
sleep 0.5
wrong_lines=$(grep -c 'level=WARN msg="wrong password" from=127.0.0.1:.* source=127.0.0.1 ' "$work/kdsrv.log" || true)
refused_lines=$(grep -c 'level=WARN msg="connection refused before authentication" from=127.0.0.1:.* source=127.0.0.1 ' "$work/kdsrv.log" || true)
echo "  kdsrv log at its default level: $wrong_lines wrong-password lines, $refused_lines refusal lines, e.g.:"
{ grep -m2 'msg="wrong password"\|msg="connection refused' "$work/kdsrv.log" || true; } | sed 's/^/    /'
check "every failure logged with the source address ($((wrong_lines + refused_lines)) of 8)" \
	$([ $((wrong_lines + refused_lines)) -eq 8 ]; echo $?)
if grep -q 'Right2guess\|wrong0' "$work/kdsrv.log"; then check "no password in the log" 1; fi

ok_after=""
for _ in $(seq 95); do
	if KDSRV_PASSWORD=Right2guess kdc version >"$work/right.out" 2>&1; then
		ok_after=$(($(now_ms) - last_wrong))
		break
	fi
	sleep 1
done
check "the right password works again ${ok_after:-never} ms after the last wrong one (target <= 90 s)" \
	$([ -n "$ok_after" ] && [ "$ok_after" -le 90000 ]; echo $?)

echo "== 2. $flood_n half-open connections from 127.0.0.2"
fds_before=$(ls "/proc/${pid[server]}/fd" | wc -l)
KDSRV_PASSWORD=Right2guess "$work/flood" -from 127.0.0.2 -to "127.0.0.1:$port" -n "$flood_n" -hold 25s -probe 127.0.0.3 -probes 5 \
	>"$work/flood.out" 2>&1 &
pid[flood]=$!
wait_line "$work/flood.out" "slowest probe\|probe 5\|flood:.*failed"
fds_during=$(ls "/proc/${pid[server]}/fd" | wc -l)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/${pid[server]}/status")
worst_kdc=0
for i in $(seq 5); do
	t0=$(now_ms)
	if KDSRV_PASSWORD=Right2guess kdc version >"$work/kdc.out" 2>&1; then
		ms=$(($(now_ms) - t0))
		echo "  kdclient version from 127.0.0.1 during the flood: $ms ms (new process: includes deriving the password key)"
	else
		ms=99999
		echo "  kdclient version from 127.0.0.1 during the flood FAILED: $(head -c 300 "$work/kdc.out")"
	fi
	[ "$ms" -gt "$worst_kdc" ] && worst_kdc=$ms
done
wait "${pid[flood]}" || true
unset 'pid[flood]'
sed 's/^/  /' "$work/flood.out"
echo "  server descriptors: $fds_before before, $fds_during during the flood; RSS $rss kB"
busy_lines=$(grep -c 'msg="connection refused before authentication".* source=127.0.0.2 ' "$work/kdsrv.log" || true)
echo "  kdsrv log: $busy_lines refusal lines for 127.0.0.2 (rate-limited: 5/s, bursts of 20), e.g.:"
{ grep -m1 'msg="connection refused before authentication".* source=127.0.0.2 ' "$work/kdsrv.log" || true; } | sed 's/^/    /'
worst_probe=$(sed -n 's/.*slowest probe \(.*\)/\1/p' "$work/flood.out")
probe_ms=$(awk -v d="$worst_probe" 'BEGIN { v = d + 0; if (d ~ /µs$/) v /= 1000; else if (d ~ /ms$/) ; else if (d ~ /s$/) v *= 1000; print int(v) }')
check "a client from 127.0.0.3 authenticated and ran a command in at most $worst_probe (target < 1 s)" \
	$([ -n "$worst_probe" ] && [ "$probe_ms" -lt 1000 ]; echo $?)
check "kdclient from 127.0.0.1 ran version in at most $worst_kdc ms during the flood" \
	$([ "$worst_kdc" -lt 99999 ]; echo $?)
exit $failed
