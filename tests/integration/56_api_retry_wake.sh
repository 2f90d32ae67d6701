#!/usr/bin/env bash
# A retry whose backoff outlasts the worker's idle window: the worker
# retires, and the API wakes a worker again when the retry comes due (no
# enqueue, no cron needed).
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
# The platform's part: a worker process is there to answer every wake
# (EXIT_ON_IDLE=false stands in for Cloud Run starting a new instance).
start_worker w QUEUES=default IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false BACKOFF_BASE=2 BACKOFF_CAP=2
APORT=$($FREEPORT)
env PORT="$APORT" REDIS_URL="$REDIS_URL" NO_AUTH=true RECONCILE_INTERVAL=0 \
	WAKE_URL="$w_URL/wake" "$BIN/wakeq-api" >"$T/api.log" 2>&1 &
apid=$!
on_exit "kill_wait $apid"
A=http://127.0.0.1:$APORT
wait_until "$START_S" curl -fs "$A/healthz" >/dev/null
id=$(curl -fs -H 'Content-Type: application/json' \
	-d '{"type":"fail","payload":{"retryable":true,"message":"flaky"},"max_attempts":2}' "$A/v1/jobs" | jq -r .id)
check "the first attempt fails and waits out its backoff" \
	wait_until 5 sh -c "[ \"\$(curl -fs $A/v1/jobs/$id | jq -r .status)\" = retrying ]"
check "the worker retired meanwhile (no live worker)" \
	wait_until 3 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json | jq .default.workers)\" = 0 ]"
check "the API woke a worker for the retry: second attempt made" \
	wait_until 10 sh -c "[ \"\$(curl -fs $A/v1/jobs/$id | jq -r '\"\(.status) \(.attempts)\"')\" = 'failed 2' ]"
wakes=$(curl -fs "$w_URL/metrics" | awk '/^wakeq_wakes_total/ {print $2}')
check "the worker was woken twice ($wakes)" test "${wakes:-0}" -ge 2
exit 0
