#!/usr/bin/env bash
# 03_redis_kill - Redis killed with SIGKILL under load and started again
# from its append-only file (appendfsync always), down for a while each
# time (longer than LEASE too). Every job the API accepted survives; while
# Redis is down the API refuses new jobs with JSON 503 + Retry-After and
# keeps nothing of them; jobs in flight at the kill may run again, no other.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_init redis_kill
chaos_redis_start
start_postgres >/dev/null
chaos_redis_ballast "$(pick 300000 500000)" || not_ok "redis ballast"
chaos_counter_start
chaos_api_start
chaos_workers_start || exit 1

read -ra DOWN <<<"$(pick "1 3" "0.3 1 3 0.5 5 1 3 2 0.2 4 1.5 3")"
SECS=$(pick 12 75)
chaos_load_start "$(pick 40 60)" "$SECS" 100
gap=$(chaos_gap "$SECS" "${DOWN[@]}")
outages=()
for d in "${DOWN[@]}"; do
	sleep "$gap"
	t0=$(now_us)
	held=$(chaos_held_pause)
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null
	sleep "$d"
	chaos_redis_restart || { not_ok "redis did not restart from its AOF"; break; }
	t1=$(now_us)
	# shellcheck disable=SC2086
	chaos_fault redis_kill "$t0" "$t1" redis $held
	outages+=("$NFAULT:$d")
done
chaos_load_wait
check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + 30))
expect_eq "reconcile finds no job to enqueue again (AOF kept every one)" 0 \
	"$(curl -s -XPOST -H "Authorization: Bearer $TOKEN" "$API/v1/reconcile" | jq -r .requeued)"
lat_max=0
for o in "${outages[@]}"; do
	read -r n ok u other lat <<<"$(chaos_outage_answers "${o%%:*}")"
	[ "$lat" -gt "$lat_max" ] && lat_max=$lat
	if [ "$n" -gt 0 ] && awk -v d="${o#*:}" 'BEGIN { exit !(d >= 0.5) }'; then
		check "Redis down ${o#*:} s: the API refused with 503 ($n sent: $ok accepted, $u refused, $other other; slowest ${lat} ms)" \
			test "$u" -gt 0 -a "$other" = 0
	fi
done
chaos_audit "\"answer_max_ms_while_down\":$lat_max"
exit 0
