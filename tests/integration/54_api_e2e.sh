#!/usr/bin/env bash
# 54_api_e2e - the whole path with the real binaries: POST /v1/jobs ->
# the API wakes the worker -> the worker drains -> done, checked in the
# response, the SSE stream and the Postgres row; then the worker exits
# when idle, and a later POST wakes a fresh one.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh

WORKER_BIN=$BIN/wakeq-worker
start_redis
start_postgres

TOKEN=tok-54
WTOKEN=wake-54
H="Authorization: Bearer $TOKEN"
WORKER_PORT=$($FREEPORT)

start_worker() {
	env PORT=$WORKER_PORT REDIS_URL=$REDIS_URL DATABASE_URL="$DATABASE_URL" QUEUES=default \
		CONCURRENCY=2 IDLE_TIMEOUT=1 EXIT_ON_IDLE=true WAKE_TOKEN=$WTOKEN \
		LOG_FORMAT=json LOG_LEVEL=debug GOOGLE_CLOUD_PROJECT=proj \
		"$WORKER_BIN" >>"$T/worker.log" 2>&1 &
	WORKER_PID=$!
	on_exit "kill_wait $WORKER_PID"
	wait_until "$START_S" curl -sf -o /dev/null "http://127.0.0.1:$WORKER_PORT/healthz"
}
API_PORT=$($FREEPORT)
env PORT=$API_PORT REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN DATABASE_URL="$DATABASE_URL" \
	WAKE_URL="http://127.0.0.1:$WORKER_PORT/wake" WAKE_TOKEN=$WTOKEN RECONCILE_INTERVAL=0 \
	"$API_BIN" >>"$T/api.log" 2>&1 &
API_PID=$!
on_exit "kill_wait $API_PID"
API=http://127.0.0.1:$API_PORT
wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" || { echo "# api did not start"; diag "$T/api.log"; exit 1; }

start_worker
expect_eq "the idle worker is not registered before a wake" 0 "$(rcli zcard 'wakeq:{default}:workers')"
r=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"sleep","payload":{"ms":400}}' "$API/v1/jobs")
expect_eq "POST -> 202" 202 "${r##* }"
ID=$(jq -r .id <<<"${r% *}")
curl -sN -H "$H" "$API/v1/jobs/$ID/events" >"$T/sse.txt" &
SSE=$!
wait_until 15 bash -c "[ \"\$(curl -s -H '$H' $API/v1/jobs/$ID | jq -r .status)\" = done ]"
expect_eq "the job ran to done" done "$(curl -s -H "$H" "$API/v1/jobs/$ID" | jq -r .status)"
wait_until 5 grep -q '^event: end' "$T/sse.txt"
kill "$SSE" 2>/dev/null
check "SSE stream ended with the done job" bash -c "grep -A1 '^event: end' '$T/sse.txt' | grep -q '\"status\":\"done\"'"
wait_until 10 bash -c "[ \"\$(psql '$DATABASE_URL' -Atqc \"select status from jobs where id='$ID'\")\" = done ]"
expect_eq "postgres row is done" done "$(psql "$DATABASE_URL" -Atqc "select status from jobs where id='$ID'")"
expect_eq "one wake was sent" 1 "$(curl -s "$API/metrics" | sed -n 's/^wakeq_api_wakes_total{outcome="sent"} //p')"

# idle exit, then a fresh wake
wait_until 15 bash -c "! kill -0 $WORKER_PID 2>/dev/null"
rc=0
wait "$WORKER_PID" 2>/dev/null || rc=$?
expect_eq "worker exited 0 when idle" 0 "$rc"
start_worker
ID2=$(curl -s -H "$H" -H "$CT" -H 'X-Cloud-Trace-Context: 4bf92f3577b34da6a3ce929d0e0e4736/1;o=1' \
	-d '{"type":"noop"}' "$API/v1/jobs" | jq -r .id)
wait_until 15 bash -c "[ \"\$(curl -s -H '$H' $API/v1/jobs/$ID2 | jq -r .status)\" = done ]"
expect_eq "a second POST wakes the new worker" done "$(curl -s -H "$H" "$API/v1/jobs/$ID2" | jq -r .status)"
check "the worker's lines for the job carry the trace of its POST" \
	bash -c "grep '^{' '$T/worker.log' | jq -e -s 'map(select(.job_id == \"$ID2\"))[0][\"logging.googleapis.com/trace\"] == \"projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736\"' >/dev/null"
[ "$_t_failed" = 0 ] || { diag "$T/api.log"; diag "$T/worker.log"; }
exit 0
