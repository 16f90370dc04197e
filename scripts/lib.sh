# Helpers shared by the scripts (demo.sh, faults.sh, abuse.sh): source it
# from the repository's root with ". scripts/lib.sh".

# now_ms prints the time in milliseconds.
now_ms() { date +%s%3N; }

# wait_line FILE PATTERN: wait (at most 10 s) for a line of FILE matching
# PATTERN; on time-out, say so, show FILE and fail.
wait_line() {
	local _
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	local me=${0##*/}
	echo "${me%.sh}: no '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}
