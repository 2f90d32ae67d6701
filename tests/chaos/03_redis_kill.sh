#!/usr/bin/env bash
# 03_redis_kill - Redis killed with SIGKILL under load and started again
# from its append-only file (appendfsync always), down for a while each
# time (longer than LEASE too). Every job the API accepted survives; while
# Redis is down the API refuses new jobs with JSON 503 + Retry-After and
# keeps nothing of them; jobs in flight at the kill may run again, no other.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_start redis_kill "$(pick 300000 500000)"

read -ra DOWN <<<"$(pick "1 3" "0.3 1 3 0.5 5 1 3 2 0.2 4 1.5 3")"
SECS=$(pick 12 75)
chaos_load_start "$(pick 40 60)" "$SECS" 100
down() { # SIGKILL, then a restart from the AOF after $1 s
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null
	sleep "$1"
	chaos_redis_restart || { not_ok "redis did not restart from its AOF"; return 1; }
}
chaos_faults redis_kill redis "$SECS" down "${DOWN[@]}"
chaos_load_wait
chaos_recovered 30 "AOF kept every one"
lat_max=0
for o in "${OUTAGES[@]}"; do
	read -r n ok u other lat <<<"$(chaos_outage_answers "${o%%:*}")"
	[ "$lat" -gt "$lat_max" ] && lat_max=$lat
	if [ "$n" -gt 0 ] && awk -v d="${o#*:}" 'BEGIN { exit !(d >= 0.5) }'; then
		check "Redis down ${o#*:} s: the API refused with 503 ($n sent: $ok accepted, $u refused, $other other; slowest ${lat} ms)" \
			test "$u" -gt 0 -a "$other" = 0
	fi
done
chaos_audit "\"answer_max_ms_while_down\":$lat_max"
exit 0
