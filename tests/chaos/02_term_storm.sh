#!/usr/bin/env bash
# 02_term_storm - SIGTERM storm: one of three workers told to stop every
# 0.5-1.1 s (and started again at once) while http.request jobs arrive
# through the API. Jobs (300 ms, three in flight per worker on average) are
# shorter than SHUTDOWN_GRACE, so a stopping worker finishes and settles
# what it runs and hands back what it had only taken ahead: no lease is
# left behind, nothing runs twice, and every worker exits 0 inside its
# grace (the worker before issue 11's defect 3 was fixed left 9 to 17
# leases behind per run here, and those jobs ran again).
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_start term_storm

SECS=$(pick 12 120)
chaos_load_start 30 "$SECS" 300
end=$((SECONDS + SECS))
left=0 slow=0 badrc=0 nterm=0 exit_max=0
while [ $SECONDS -lt $end ]; do
	sleep "0.$((RANDOM % 7 + 5))"
	i=$((RANDOM % NWORKERS + 1))
	pid=${WPID[$i]} wid=${WID[$i]}
	held=$(chaos_held "$wid")
	t=$(now_us)
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	t1=$(now_us)
	ms=$(((t1 - t) / 1000))
	nterm=$((nterm + 1))
	[ "$rc" = 0 ] || badrc=$((badrc + 1))
	[ "$ms" -le $((GRACE * 1000 + 500)) ] || slow=$((slow + 1))
	[ "$ms" -gt "$exit_max" ] && exit_max=$ms
	after=$(chaos_held "$wid")
	[ -n "$after" ] && left=$((left + $(wc -w <<<"$after")))
	# shellcheck disable=SC2086
	chaos_fault sigterm "$t" "$t1" "$wid" $held $after
	chaos_worker_start "$i" || break
done
chaos_load_wait
expect_eq "SIGTERMed workers that did not exit 0 ($nterm signals)" 0 "$badrc"
expect_eq "SIGTERMed workers that took longer than the grace + 0.5 s (slowest ${exit_max} ms)" 0 "$slow"
expect_eq "leases left behind by a SIGTERMed worker" 0 "$left"
check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + 20))
expect_eq "reconcile finds no job to enqueue again" 0 \
	"$(curl -s -XPOST -H "Authorization: Bearer $TOKEN" "$API/v1/reconcile" | jq -r .requeued)"
chaos_audit "\"term_exit_max_ms\":$exit_max,\"leases_left\":$left"
# Every job is shorter than the grace: a stopping worker finishes and
# settles each one it started, so none may run twice, in flight or not.
expect_eq "jobs run twice in a SIGTERM storm (all shorter than SHUTDOWN_GRACE)" 0 \
	"$(awk '$3 > 1' "$T/jobs" | wc -l)"
exit 0
