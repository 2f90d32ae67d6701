#!/usr/bin/env bash
# 17_pause - pause and resume with the real worker, CLI and API: a paused
# queue takes jobs but no worker runs them; a worker whose queues are all
# paused ends its drain at once (it does not wait out IDLE_TIMEOUT); the
# API wakes nobody for a paused queue and wakes a worker on resume.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

ms() { date +%s%3N; }
drains() { curl -fs "$1/metrics" | awk '/^wakeq_drains_total/ {print $2}'; }

# ---- the CLI: pause, enqueue, a wake that ends at once --------------------
expect_eq "wakeq pause says so" "pq paused" "$(wq pause pq)"
wq enqueue noop --queue pq --count 5 >/dev/null
expect_eq "a paused queue still takes jobs" 5 "$(count_status pq queued)"
expect_eq "stats --json shows it paused" true "$(wq stats --json --queue pq | jq -r .pq.paused)"
check "the stats table says paused" sh -c "REDIS_URL=$REDIS_URL $BIN/wakeq stats --queue pq | grep -q ' paused$'"
start_worker w1 QUEUES=pq IDLE_TIMEOUT=5 EXIT_ON_IDLE=false
t0=$(ms)
out=$(curl -fs -XPOST "$w1_URL/wake")
el=$(($(ms) - t0))
expect_eq "a wake on a paused queue runs nothing" 0 "$(jq -r .drain.jobs <<<"$out")"
check "and ends without waiting out IDLE_TIMEOUT (${el} ms < 2000)" test "$el" -lt 2000
expect_eq "the jobs are still queued" 5 "$(count_status pq queued)"
expect_eq "the worker left the registry" 0 "$(count_status pq workers)"

# ---- resume through the CLI wakes the worker (WAKE_URL) -------------------
out=$(WAKE_URL="$w1_URL/wake" wq resume pq 2>"$T/resume.err")
expect_eq "wakeq resume says so" "pq resumed" "$out"
check "resume woke the worker (no live worker, due work)" grep -q "woke" "$T/resume.err"
check "the jobs run after the resume" wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pq | jq -r .pq.done)\" = 5 ]"

kill_wait "$w1_PID"

# ---- a job running when the pause comes finishes; the rest wait -------------
# a worker on two queues: the paused one is left alone, the other runs
wq enqueue sleep --queue pq --payload '{"ms":600}' >/dev/null
start_worker w2 QUEUES=pq,other IDLE_TIMEOUT=1.5 EXIT_ON_IDLE=false
curl -fs -XPOST "$w2_URL/wake" >"$T/w2.out" &
held=$!
wait_until 5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pq | jq -r .pq.active)\" = 1 ]"
wq pause pq >/dev/null
wq enqueue noop --queue pq --count 3 >/dev/null
wq enqueue noop --queue other --count 4 >/dev/null
wait $held
expect_eq "the running job finished after the pause" 6 "$(count_status pq done)"
expect_eq "the paused queue's new jobs wait" 3 "$(count_status pq queued)"
expect_eq "the other queue's jobs ran" 4 "$(count_status other done)"
expect_eq "the drain ran the running job and the other queue's" 5 "$(jq -r .drain.jobs "$T/w2.out")"
wq resume pq >/dev/null 2>&1

kill_wait "$w2_PID"

# ---- the API: pause, no wake for a paused queue, resume wakes ----------------
wq pause pq >/dev/null
start_worker w1 QUEUES=pq IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false
TOKEN=tok
_start_api QUEUES=pq,other WAKE_URL="$w1_URL/wake"
H="Authorization: Bearer tok"
api() { curl -s -H "$H" -H 'Content-Type: application/json' "$@"; }
d0=$(drains "$w1_URL")
r=$(api -XPOST "$API/v1/queues/pq/resume")
expect_eq "POST /v1/queues/pq/resume answers the state" "pq false" "$(jq -r '"\(.queue) \(.paused)"' <<<"$r")"
check "resume woke the worker for the 3 waiting jobs" wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pq | jq -r .pq.done)\" = 9 ]"
r=$(api -XPOST "$API/v1/queues/pq/pause")
expect_eq "POST /v1/queues/pq/pause answers paused" "pq true" "$(jq -r '"\(.queue) \(.paused)"' <<<"$r")"
expect_eq "GET /v1/queues shows it" "true false" \
	"$(api "$API/v1/queues" | jq -r '"\(.queues.pq.paused) \(.queues.other.paused)"')"
wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pq | jq -r .pq.workers)\" = 0 ]"
d1=$(drains "$w1_URL")
code=$(api -o /dev/null -w '%{http_code}' -d '{"type":"noop","queue":"pq"}' "$API/v1/jobs")
expect_eq "POST /v1/jobs to a paused queue is accepted" 202 "$code"
sleep 1
expect_eq "and wakes nobody (no worker runs a paused queue)" "$d1" "$(drains "$w1_URL")"
expect_eq "the job waits" 1 "$(count_status pq queued)"
api -XPOST "$API/v1/queues/pq/resume" >/dev/null
check "resume wakes the worker, which runs it" wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pq | jq -r .pq.queued)\" = 0 ]"
check "the worker drained more than once in all" test "$(drains "$w1_URL")" -gt "$d0"
expect_eq "a queue not served is 404" 404 "$(api -o /dev/null -w '%{http_code}' -XPOST "$API/v1/queues/nope/pause")"
expect_eq "GET on pause is 405" 405 "$(api -o /dev/null -w '%{http_code}' "$API/v1/queues/pq/pause")"
exit 0
