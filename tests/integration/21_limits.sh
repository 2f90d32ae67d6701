#!/usr/bin/env bash
# 21_limits - rate limits and concurrency caps, per queue and per group,
# with real workers, the real API and its waker: two workers fed by two
# API instances and the CLI at once never run more of one group at once
# than its cap (measured from the jobs' start and end times in Redis and
# from the handler's own start and end, logged by the server the jobs
# call: tests/tools/hitcount); groups take turns (a small group queued
# after a big one is not left behind it); a rate-limited worker sleeps until the next
# token; a token later than IDLE_TIMEOUT ends the drain and the API's
# waker wakes a worker at that time, as for a delayed job.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

drains() { curl -fs "$1/metrics" | awk '/^wakeq_drains_total/ {print $2}'; }

# ---- two workers, two APIs, one group capped at 2, another group beside it -----
wq settings lim group_concurrency=2 >/dev/null
# group t1's jobs call a server that logs each call's start and end
"$BIN/tests/tools/hitcount" "$T/hits" >"$T/hit.port" 2>"$T/hit.err" &
on_exit "kill_wait $!"
wait_until 5 test -s "$T/hit.port" || { diag "$T/hit.err"; exit 1; }
HIT=http://127.0.0.1:$(head -1 "$T/hit.port")/hit
for i in $(seq 1 30); do
	echo "{\"type\":\"http.request\",\"queue\":\"lim\",\"group\":\"t1\",\"payload\":{\"url\":\"$HIT?k=t1-$i&ms=40&span=1\"}}"
done >"$T/t1.jsonl"
# woken before the jobs come: an empty drain lingers (EMPTY_WAKE_LINGER)
# for them as long as a busy one would
start_worker w1 QUEUES=lim CONCURRENCY=4 IDLE_TIMEOUT=1 EMPTY_WAKE_LINGER=1 EXIT_ON_IDLE=false \
	ALLOW_PRIVATE_NETWORKS=loopback
start_worker w2 QUEUES=lim CONCURRENCY=4 IDLE_TIMEOUT=1 EMPTY_WAKE_LINGER=1 EXIT_ON_IDLE=false \
	ALLOW_PRIVATE_NETWORKS=loopback
curl -fs -XPOST "$w1_URL/wake?wait=0" >/dev/null
curl -fs -XPOST "$w2_URL/wake?wait=0" >/dev/null
# enqueued while both drain: hammering, from two enqueuers at once
( for i in $(seq 1 15); do wq enqueue sleep --queue lim --payload '{"ms":40}' >/dev/null 2>&1; done ) &
e1=$!
API_PORT=$($FREEPORT)
env PORT=$API_PORT REDIS_URL=$REDIS_URL API_TOKEN=tok QUEUES=lim RECONCILE_INTERVAL=0 \
	"$BIN/wakeq-api" >"$T/api.log" 2>&1 &
on_exit "kill_wait $!"
API=http://127.0.0.1:$API_PORT
wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" || { diag "$T/api.log"; exit 1; }
A1=$API
TOKEN=tok _start_api QUEUES=lim # a second API instance, on a port it picks
API1B=$API
API=$A1
n=0
while read -r job; do # alternately to each API instance
	n=$((n + 1))
	[ $((n % 2)) = 0 ] && to=$API || to=$API1B
	curl -s -o /dev/null -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
		-d "$job" "$to/v1/jobs" &
done <"$T/t1.jsonl"
for i in $(seq 1 10); do
	[ $((i % 2)) = 0 ] && to=$API || to=$API1B
	curl -s -o /dev/null -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
		-d '{"type":"sleep","queue":"lim","group":"t2","payload":{"ms":40}}' "$to/v1/jobs" &
done
wait $e1
check "all 55 jobs ran" wait_until 30 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue lim | jq -r .lim.done)\" = 55 ]"
spans lim >"$T/spans"
m=$(max_open t1 <"$T/spans")
expect_eq "group t1 never had more than 2 running at once (start/end times)" 2 "$m"
expect_eq "each of t1's 30 calls made once, answered 200" "30 30" \
	"$(awk '$5 == 200 { n++; k[$2] } END { printf "%d %d", n, length(k) }' "$T/hits")"
hm=$(awk '{ printf "%.0f 1\n%.0f -1\n", $3, $4 }' "$T/hits" | sort -k1,1n -k2,2n |
	awk '{ n += $2; if (n > m) m = n } END { print m + 0 }')
expect_eq "nor more than 2 of its handlers at once (the handler's own start/end)" 2 "$hm"
check "the other group ran beside it ($(max_open "" <"$T/spans") at once in all)" test "$(max_open "" <"$T/spans")" -gt 2
done_by() { curl -fs "$1/metrics" | awk '/^wakeq_jobs_total\{outcome="done"\}/ {print $2}'; }
check "both workers ran jobs ($(done_by "$w1_URL") and $(done_by "$w2_URL"))" \
	test "$(done_by "$w1_URL")" -gt 0 -a "$(done_by "$w2_URL")" -gt 0
expect_eq "nothing left active" 0 "$(count_status lim active)"
expect_eq "no group left in Redis" 0 "$(rcli scard 'wakeq:{lim}:gin')"

# ---- the queue's concurrency cap across the two workers ------------------------
wq settings lim group_concurrency=null concurrency=3 >/dev/null
wq enqueue sleep --queue lim --payload '{"ms":30}' --count 30 >/dev/null
curl -fs -XPOST "$w1_URL/wake?wait=0" >/dev/null
curl -fs -XPOST "$w2_URL/wake?wait=0" >/dev/null
check "the 30 more ran" wait_until 30 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue lim | jq -r .lim.done)\" = 85 ]"
spans lim | sort -n | tail -30 >"$T/spans2"
expect_eq "the queue never had more than 3 running at once" 3 "$(max_open "" <"$T/spans2")"
kill_wait "$w1_PID"
kill_wait "$w2_PID"

# ---- groups take turns: a big group queued first does not starve a small one ------
# 20 jobs of group big, then 3 of group small, no limit set; one worker
# running one job at a time: the small group's jobs start among the first 6.
wq enqueue sleep --queue fair --group big --payload '{"ms":20}' --count 20 >/dev/null 2>&1
wq enqueue sleep --queue fair --group small --payload '{"ms":20}' --count 3 >/dev/null 2>&1
start_worker f1 QUEUES=fair CONCURRENCY=1 IDLE_TIMEOUT=0.3
out=$(curl -fs -XPOST "$f1_URL/wake")
expect_eq "one drain ran all 23" 23 "$(jq -r .drain.jobs <<<"$out")"
spans fair | sort -n >"$T/fair"
expect_eq "one at a time" 1 "$(max_open "" <"$T/fair")"
expect_eq "the small group's 3 started within the first 6 (in turns with the big one)" 3 \
	"$(head -6 "$T/fair" | grep -c ' small$')"
echo "# start order: $(awk '{ printf "%s ", substr($3, 1, 1) }' "$T/fair")"
kill_wait "$f1_PID"

# ---- a rate limit: the worker sleeps until the next token ----------------------
wq settings rl rate_max=5 rate_period_s=1 >/dev/null
wq enqueue noop --queue rl --count 15 >/dev/null
start_worker w3 QUEUES=rl CONCURRENCY=4 IDLE_TIMEOUT=2
out=$(curl -fs -XPOST "$w3_URL/wake")
expect_eq "one drain ran all 15 (it waited for tokens, idle 2 s)" 15 "$(jq -r .drain.jobs <<<"$out")"
spans rl | sort -n | awk '{print $1}' >"$T/starts"
# a burst of 5, then one per 200 ms: job k starts >= (k - 4) * 0.2 s after the first
late=$(awk 'NR == 1 { t0 = $1 } NR > 5 && $1 - t0 < (NR - 5) * 0.2 - 0.01 { n++ } END { print n + 0 }' "$T/starts")
expect_eq "no job started before its token" 0 "$late"
span=$(awk 'NR == 1 { t0 = $1 } END { printf "%d", ($1 - t0) * 1000 }' "$T/starts")
check "15 jobs at 5/s after a burst of 5 took >= 2 s (${span} ms)" test "$span" -ge 1990
check "and not much more (${span} ms < 3500)" test "$span" -lt 3500

# ---- a token later than IDLE_TIMEOUT: the drain ends, the API wakes at the token --
wq settings slow rate_max=1 rate_period_s=3 >/dev/null
start_worker w4 QUEUES=slow IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false
API2_PORT=$($FREEPORT)
env PORT=$API2_PORT REDIS_URL=$REDIS_URL API_TOKEN=tok QUEUES=slow RECONCILE_INTERVAL=0 \
	WAKE_URL="$w4_URL/wake" "$BIN/wakeq-api" >"$T/api2.log" 2>&1 &
on_exit "kill_wait $!"
API2=http://127.0.0.1:$API2_PORT
wait_until "$START_S" curl -sf -o /dev/null "$API2/healthz" || { diag "$T/api2.log"; exit 1; }
for i in 1 2; do
	curl -s -o /dev/null -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
		-d '{"type":"noop","queue":"slow"}' "$API2/v1/jobs"
done
check "the first ran at once" wait_until 3 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue slow | jq -r .slow.done)\" = 1 ]"
check "the drain ended meanwhile (no worker waits 3 s for a token)" \
	wait_until 2 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue slow | jq -r .slow.workers)\" = 0 ]"
expect_eq "the second is held by the rate" "1 1" \
	"$(wq stats --json --queue slow | jq -r '"\(.slow.queued) \(.slow.done)"')"
check "the API's waker woke the worker at the token: both done" \
	wait_until 6 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue slow | jq -r .slow.done)\" = 2 ]"
spans slow | sort -n | awk '{print $1}' >"$T/slow"
gap=$(awk 'NR == 1 { t0 = $1 } END { printf "%d", ($1 - t0) * 1000 }' "$T/slow")
check "3 s apart, as the rate says (${gap} ms)" test "$gap" -ge 2990 -a "$gap" -lt 4500
check "in two drains" wait_until 3 sh -c "[ \"\$(curl -fs $w4_URL/metrics | awk '/^wakeq_drains_total/ {print \$2}')\" = 2 ]"
exit 0
