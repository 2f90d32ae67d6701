#!/usr/bin/env bash
# 04_redis_freeze - Redis frozen with SIGSTOP under load and thawed with
# SIGCONT: shorter than LEASE, longer than LEASE (every lease expires on
# the thaw, as Redis's clock jumps), and in full mode longer than the
# clients' 10 s command timeout. Nothing accepted is lost, only jobs in
# flight at the freeze run again, and the API never leaves half a job.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_init redis_freeze
chaos_redis_start
start_postgres >/dev/null
chaos_counter_start
chaos_api_start
chaos_workers_start || exit 1

read -ra FREEZE <<<"$(pick "0.5 3" "0.5 3 1 12 2 5 0.3 4")"
SECS=$(pick 12 75)
chaos_load_start "$(pick 40 60)" "$SECS" 100
gap=$(chaos_gap "$SECS" "${FREEZE[@]}")
outages=()
for d in "${FREEZE[@]}"; do
	sleep "$gap"
	t0=$(now_us)
	held=$(chaos_held_pause)
	kill -STOP "$REDIS_PID"
	sleep "$d"
	kill -CONT "$REDIS_PID"
	t1=$(now_us)
	# shellcheck disable=SC2086
	chaos_fault redis_freeze "$t0" "$t1" redis $held
	outages+=("$NFAULT:$d")
done
chaos_load_wait
check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + 30))
expect_eq "reconcile finds no job to enqueue again" 0 \
	"$(curl -s -XPOST -H "Authorization: Bearer $TOKEN" "$API/v1/reconcile" | jq -r .requeued)"
lat_max=0
for o in "${outages[@]}"; do
	read -r n ok u other lat <<<"$(chaos_outage_answers "${o%%:*}")"
	[ "$lat" -gt "$lat_max" ] && lat_max=$lat
	echo "# Redis frozen ${o#*:} s: $n jobs sent, $ok accepted, $u refused, $other other; slowest answer ${lat} ms"
	check "Redis frozen ${o#*:} s: every answer a 202 or a JSON 503 ($other other)" test "$other" = 0
done
chaos_audit "\"answer_max_ms_while_frozen\":$lat_max"
exit 0
