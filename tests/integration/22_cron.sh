#!/usr/bin/env bash
# 22_cron - cron schedules with the real API, CLI and workers: a schedule
# made through the API fires on time, each fire time woken for by the
# API's waker (the worker is gone in between); a fire time makes exactly
# one job however many workers race for it (1,000 fire times, two workers,
# then the same times again; 1,000 times coming due one by one, raced for
# by two workers while two processes replay them); the catch-up policies after a downtime; the
# fire times computed ahead are refilled; overlap skip with a real worker
# (runs longer than the period never overlap, the fire times in between are
# counted as skipped); pause, resume, delete. Time
# zones across DST changes: tests/unit/cron.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

drains() { curl -fs "$1/metrics" | awk '/^wakeq_drains_total/ {print $2}'; }
done_in() { wq stats --json --queue "$1" | jq -r ".\"$1\".done"; }
now_ms() { date +%s%3N; }

# ---- the API: a schedule every second, woken for each time ----------------------
start_worker w1 QUEUES=cq IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false
TOKEN=tok
_start_api QUEUES=cq,race WAKE_URL="$w1_URL/wake"
api() { curl -s -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' "$@"; }
code() { api -o /dev/null -w '%{http_code}' "$@"; }

body='{"name":"tick","queue":"cq","cron":"* * * * * *","overlap":"allow","job":{"type":"noop","payload":{"k":1}}}'
r=$(api -w '\n%{http_code}' -d "$body" "$API/v1/schedules")
expect_eq "POST /v1/schedules creates it (201)" 201 "$(tail -1 <<<"$r")"
expect_eq "and answers it" "tick cq UTC noop" \
	"$(head -1 <<<"$r" | jq -r '"\(.name) \(.queue) \(.timezone) \(.job.type)"')"
check "its next run is within a second" test -n "$(head -1 <<<"$r" | jq -r '.next_run_at // empty')"
check "the API wakes the worker for each fire time: 3 jobs done" wait_until 6 sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue cq | jq -r .cq.done)\" -ge 3 ]"
d=$(drains "$w1_URL")
check "in drains of their own ($d), the worker leaving in between" test "$d" -ge 2
expect_eq "the same name again replaces it (200)" 200 \
	"$(code -d "${body/\"k\":1/\"k\":2}" "$API/v1/schedules")"
expect_eq "GET /v1/schedules/tick: the new job, what it did kept" "2 true" \
	"$(api "$API/v1/schedules/tick" | jq -r '"\(.job.payload.k) \(.fired > 2)"')"
expect_eq "GET /v1/schedules lists it" tick "$(api "$API/v1/schedules" | jq -r '.schedules[].name')"
expect_eq "pause" true "$(api -XPOST "$API/v1/schedules/tick/pause" | jq -r .paused)"
sleep 1.5
n0=$(done_in cq)
sleep 1.5
expect_eq "no jobs while paused" "$n0" "$(done_in cq)"
expect_eq "resume" false "$(api -XPOST "$API/v1/schedules/tick/resume" | jq -r .paused)"
check "jobs again after the resume" wait_until 5 sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue cq | jq -r .cq.done)\" -gt $n0 ]"
expect_eq "DELETE /v1/schedules/tick" true "$(api -XDELETE "$API/v1/schedules/tick" | jq -r .deleted)"
expect_eq "then it is 404" 404 "$(code "$API/v1/schedules/tick")"
expect_eq "a bad cron is 400" invalid_field \
	"$(api -d '{"name":"x","cron":"61 * * * *","job":{"type":"noop"}}' "$API/v1/schedules" | jq -r .error.code)"
expect_eq "an unknown zone is 400" invalid_field \
	"$(api -d '{"name":"x","cron":"* * * * *","timezone":"Mars/Base","job":{"type":"noop"}}' "$API/v1/schedules" | jq -r .error.code)"
expect_eq "a queue not served is 400" 400 \
	"$(code -d '{"name":"x","queue":"nope","cron":"* * * * *","job":{"type":"noop"}}' "$API/v1/schedules")"
kill_wait "$w1_PID"

# ---- 1,000 fire times, two workers racing: one job each ----------------------------
out=$(wq schedules add burst '0 0 1 1 *' noop --queue race --overlap allow 2>&1)
check "wakeq schedules add" grep -q "schedule 'burst' created on 'race'" <<<"$out"
now=$(now_ms)
for i in $(seq 1 1000); do t=$((now - 50000 + i * 40)); echo "$t $t"; done | tr '\n' ' ' >"$T/times"
inject() { # the schedule's next fire times are these 1,000, all due
	rcli zadd 'wakeq:{race}:stimes:burst' $(cat "$T/times") >/dev/null
	rcli zadd 'wakeq:{race}:schedules' "$((now - 50000))" burst >/dev/null
}
inject
start_worker r1 QUEUES=race CONCURRENCY=8 IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false
start_worker r2 QUEUES=race CONCURRENCY=8 IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false
curl -fs -XPOST "$r1_URL/wake" >"$T/r1.out" &
c1=$!
curl -fs -XPOST "$r2_URL/wake" >"$T/r2.out" &
c2=$!
wait $c1 $c2
expect_eq "1,000 fire times made 1,000 jobs" 1000 "$(done_in race)"
wq jobs --queue race --state done --limit 2000 --json >"$T/jobs"
expect_eq "each for a fire time of its own" 1000 "$(jq -r '.[].run_at' "$T/jobs" | sort -u | wc -l)"
expect_eq "1,000 distinct ids" 1000 "$(jq -r '.[].id' "$T/jobs" | sort -u | wc -l)"
echo "# worker jobs: $(jq -r .drain.jobs "$T/r1.out") and $(jq -r .drain.jobs "$T/r2.out")"
# the same fire times again (a retried wake, a clock stepped back): nothing new
inject
curl -fs -XPOST "$r1_URL/wake" >/dev/null &
c1=$!
curl -fs -XPOST "$r2_URL/wake" >/dev/null &
c2=$!
wait $c1 $c2
expect_eq "the same fire times again make no job" 1000 "$(done_in race)"
expect_eq "and are counted as skipped" 1000 "$(wq schedules list --queue race | jq -r '.[0].skipped')"
check "its times ahead were refilled (64)" test "$(rcli zcard 'wakeq:{race}:stimes:burst')" -ge 16

# ---- 1,000 fire times coming due one by one, raced for each -----------------------
# Every 3 ms a fire time comes due and both workers (woken for it by their
# next-due time) race to make its job; halfway, two processes replay all
# 1,000 times at once (a refill retried, a clock stepped back): the made
# ones come due again at once and must make nothing, the rest exactly one.
wq schedules add tick '0 0 1 1 *' noop --queue race2 --overlap allow >/dev/null 2>&1
start_worker r3 QUEUES=race2 CONCURRENCY=8 IDLE_TIMEOUT=3 EXIT_ON_IDLE=false
start_worker r4 QUEUES=race2 CONCURRENCY=8 IDLE_TIMEOUT=3 EXIT_ON_IDLE=false
base=$(($(now_ms) + 1500))
for i in $(seq 0 999); do t=$((base + i * 3)); echo "$t $t"; done | tr '\n' ' ' >"$T/times2"
rcli zadd 'wakeq:{race2}:stimes:tick' $(cat "$T/times2") >/dev/null
rcli zadd 'wakeq:{race2}:schedules' "$base" tick >/dev/null
curl -fs -XPOST "$r3_URL/wake" >"$T/r3.out" &
c1=$!
curl -fs -XPOST "$r4_URL/wake" >"$T/r4.out" &
c2=$!
while [ "$(now_ms)" -lt $((base + 1500)) ]; do sleep 0.05; done
for p in 1 2; do
	( rcli zadd 'wakeq:{race2}:stimes:tick' $(cat "$T/times2") >/dev/null
	  rcli zadd 'wakeq:{race2}:schedules' "$base" tick >/dev/null ) &
done
wait $c1 $c2
expect_eq "1,000 fire times raced for one by one made 1,000 jobs" 1000 "$(done_in race2)"
wq jobs --queue race2 --state done --limit 2000 --json >"$T/jobs2"
expect_eq "each for a fire time of its own" 1000 "$(jq -r '.[].run_at' "$T/jobs2" | sort -u | wc -l)"
expect_eq "fired 1,000 in all" 1000 "$(wq schedules list --queue race2 | jq -r '.[0].fired')"
r3n=$(jq -r .drain.jobs "$T/r3.out")
r4n=$(jq -r .drain.jobs "$T/r4.out")
check "both workers took part ($r3n and $r4n jobs)" test "$r3n" -gt 0 -a "$r4n" -gt 0
echo "# replayed fire times skipped: $(wq schedules list --queue race2 | jq -r '.[0].skipped')"

# ---- catch-up after a downtime: times more than a minute late ---------------------------
catchup() { # catchup POLICY [MAX]: 5 missed times; prints the jobs made
	local name=cu-$1 t
	wq schedules add "$name" '0 0 1 1 *' noop --queue cu --overlap allow --catch-up "$1" \
		${2:+--catch-up-max $2} >/dev/null 2>&1
	rcli del "wakeq:{cu}:stimes:$name" >/dev/null
	now=$(now_ms)
	for t in 600 500 400 300 200; do
		rcli zadd "wakeq:{cu}:stimes:$name" $((now - t * 1000)) $((now - t * 1000)) >/dev/null
	done
	rcli zadd 'wakeq:{cu}:schedules' $((now - 600000)) "$name" >/dev/null
	IDLE_TIMEOUT=0.2 QUEUES=cu wq drain >/dev/null 2>&1
	wq schedules list --queue cu | jq -r ".[] | select(.name == \"$name\") | \"\(.fired) \(.skipped)\""
}
expect_eq "catch_up skip: none of the 5 missed" "0 5" "$(catchup skip)"
expect_eq "catch_up one: one for all 5" "1 4" "$(catchup one)"
expect_eq "catch_up all, at most 3: the last 3" "3 2" "$(catchup all 3)"

# ---- overlap skip with a real worker: fire times every second, runs of 2.5 s ---------
# The worker has room for 4 at once, so only the policy keeps the runs apart:
# a fire time while the last run is active makes no job and is counted.
wq schedules add slow '* * * * * *' sleep --queue ov --payload '{"ms":2500}' --overlap skip \
	>/dev/null 2>&1
start_worker o1 QUEUES=ov CONCURRENCY=4 IDLE_TIMEOUT=3 EXIT_ON_IDLE=false
curl -fs -XPOST "$o1_URL/wake?wait=0" >/dev/null
sleep 8
wq schedules pause slow --queue ov >/dev/null
check "the last run ends" wait_until 5 sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue ov | jq -r '.ov.active + .ov.queued')\" = 0 ]"
read -r fired skipped < <(wq schedules get slow --queue ov | jq -r '"\(.fired) \(.skipped)"')
spans ov >"$T/ov"
n=$(wc -l <"$T/ov")
check "runs were made ($n in 8 s)" test "$n" -ge 2 -a "$n" -le 4
expect_eq "one a fire time: fired counts them" "$n" "$fired"
expect_eq "never two at once (their start and end times)" 1 "$(max_open "" <"$T/ov")"
check "the fire times while one ran were skipped and counted ($skipped, $fired fired)" \
	test "$skipped" -ge $((fired - 1)) -a "$skipped" -ge 2
check "every fire time of the 8 s was made or skipped ($fired + $skipped)" \
	test $((fired + skipped)) -ge 6 -a $((fired + skipped)) -le 11
kill_wait "$o1_PID"

# ---- the CLI ----------------------------------------------------------------------------------
expect_eq "wakeq schedules list" "burst" "$(wq schedules list --queue race | jq -r '.[].name')"
expect_eq "wakeq schedules pause" "burst paused" "$(wq schedules pause burst --queue race)"
expect_eq "listed as paused" true "$(wq schedules list --queue race | jq -r '.[0].paused')"
expect_eq "wakeq schedules delete" "burst deleted" "$(wq schedules delete burst --queue race)"
wq schedules delete burst --queue race >/dev/null 2>&1
expect_eq "deleting it again: not found (3)" 3 "$?"
wq schedules add x 'nope' noop >/dev/null 2>&1
expect_eq "a bad cron: usage (2)" 2 "$?"
exit 0
