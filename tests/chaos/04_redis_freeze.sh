#!/usr/bin/env bash
# 04_redis_freeze - Redis frozen with SIGSTOP under load and thawed with
# SIGCONT: shorter than LEASE, longer than LEASE (every lease expires on
# the thaw, as Redis's clock jumps), and in full mode longer than the
# clients' 10 s command timeout. Nothing accepted is lost, only jobs in
# flight at the freeze run again, and the API never leaves half a job.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_start redis_freeze

read -ra FREEZE <<<"$(pick "0.5 3" "0.5 3 1 12 2 5 0.3 4")"
SECS=$(pick 12 75)
chaos_load_start "$(pick 40 60)" "$SECS" 100
freeze() { kill -STOP "$REDIS_PID"; sleep "$1"; kill -CONT "$REDIS_PID"; }
chaos_faults redis_freeze redis "$SECS" freeze "${FREEZE[@]}"
chaos_load_wait
chaos_recovered 30
lat_max=0
for o in "${OUTAGES[@]}"; do
	read -r n ok u other lat <<<"$(chaos_outage_answers "${o%%:*}")"
	[ "$lat" -gt "$lat_max" ] && lat_max=$lat
	echo "# Redis frozen ${o#*:} s: $n jobs sent, $ok accepted, $u refused, $other other; slowest answer ${lat} ms"
	check "Redis frozen ${o#*:} s: every answer a 202 or a JSON 503 ($other other)" test "$other" = 0
done
chaos_audit "\"answer_max_ms_while_frozen\":$lat_max"
exit 0
