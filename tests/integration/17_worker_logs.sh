#!/usr/bin/env bash
# 17_worker_logs - the worker's log lines about jobs and about Redis, as
# JSON: a finished job at INFO with its id, type, queue, attempt and
# duration; a failure that will be retried at WARNING; a dead-lettered
# job at ERROR; while Redis is unreachable, one warning, then at most one
# every 10-60 s with the count held back (not one every 200 ms), and a
# line when it is reachable again.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

lines() { # lines LOG MESSAGE: the JSON lines with that message
	jq -c --arg m "$2" 'select(.message == $m)' "$1"
}

# ---- jobs ----------------------------------------------------------------------
done_id=$(wq enqueue sleep --queue logs --payload '{"ms":30}')
retry_id=$(wq enqueue fail --queue logs --max-attempts 2 --payload '{"message":"try again","retryable":true}')
dead_id=$(wq enqueue fail --queue logs --max-attempts 1 --payload '{"message":"no luck"}')
start_worker w1 QUEUES=logs IDLE_TIMEOUT=0.5 LOG_FORMAT=json BACKOFF_BASE=0.05
curl -fs -XPOST "$w1_URL/wake" >/dev/null
wait_until 5 exited "$w1_PID"
L=$T/w1.log
check "every line is JSON with severity, message and time" \
	jq -e -s 'length > 0 and all(.severity and .message and .time)' "$L"
d=$(lines "$L" "job done" | jq -c --arg id "$done_id" 'select(.job_id == $id)')
expect_eq "a finished job: one INFO line" "1 INFO" "$(grep -c . <<<"$d") $(jq -r .severity <<<"$d")"
expect_eq "with its type, queue and attempt" "sleep logs 1" "$(jq -r '"\(.type) \(.queue) \(.attempt)"' <<<"$d")"
check "and its duration in seconds (>= the 30 ms it slept): $(jq -r .duration_s <<<"$d")" \
	jq -e '(.duration_s | tonumber) >= 0.03 and (.duration_s | tonumber) < 5' <<<"$d"
r=$(lines "$L" "job failed" | jq -c --arg id "$retry_id" 'select(.job_id == $id)')
expect_eq "a failure with attempts left: WARNING, retry yes, attempt 1" "WARNING yes 1 try again" \
	"$(jq -r '"\(.severity) \(.retry) \(.attempt) \(.error)"' <<<"$r")"
x=$(lines "$L" "job dead-lettered" | jq -c --arg id "$retry_id" 'select(.job_id == $id)')
expect_eq "its last attempt is dead-lettered at ERROR" "ERROR 2 fail" \
	"$(jq -r '"\(.severity) \(.attempt) \(.type)"' <<<"$x")"
x=$(lines "$L" "job dead-lettered" | jq -c --arg id "$dead_id" 'select(.job_id == $id)')
expect_eq "a job that may not retry: ERROR at once, with its error" "ERROR 1 no luck no" \
	"$(jq -r '"\(.severity) \(.attempt) \(.error) \(.retry)"' <<<"$x")"
expect_eq "and it is in the dead letters" failed "$(job_field "$dead_id" status)"

# ---- Redis unreachable ------------------------------------------------------------
# A drain that starts with Redis gone retries every 200 ms: about 15
# attempts in 3 s. One warning is written for all of them.
stop_redis
start_worker w2 QUEUES=logs IDLE_TIMEOUT=1 LOG_FORMAT=json
curl -fs -XPOST "$w2_URL/wake?wait=0" >/dev/null
sleep 3
L=$T/w2.log
n=$(jq -s '[.[] | select(.message == "redis unavailable, retrying" or .message == "take failed" or
	.message == "cannot register worker" or .message == "cannot retire")] | length' "$L")
expect_eq "3 s of Redis outage: one warning, not one every 200 ms" 1 "$n"
check "it says what failed" jq -e -s \
	'map(select(.message == "redis unavailable, retrying"))[0] | .severity == "WARNING" and (.error | length > 0)' "$L"
restart_redis
check "once Redis is back, one line says so, with the attempts held back" \
	wait_until 10 sh -c "jq -e -s 'map(select(.message == \"redis reachable again\"))[0] | (.repeated | tonumber) >= 5 and (.after_s | tonumber) >= 2' '$L' >/dev/null 2>&1"
check "and the drain ends normally" wait_until 10 exited "$w2_PID"
[ "$_t_failed" = 0 ] || { diag "$T/w1.log"; diag "$T/w2.log"; }
exit 0
