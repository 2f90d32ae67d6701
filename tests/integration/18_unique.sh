#!/usr/bin/env bash
# 18_unique - unique-while-active jobs through the real API (with
# Postgres) and CLI, run by the real worker: while a job with a unique
# key is queued, scheduled, retrying or active, an enqueue with that key
# is answered with that job (200, like an idempotent repeat) and leaves no
# Postgres row behind; once the job ends, the key is free again.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
start_postgres

pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
API_PORT=$($FREEPORT)
env PORT=$API_PORT REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL API_TOKEN=tok \
	RECONCILE_INTERVAL=0 "$BIN/wakeq-api" >"$T/api.log" 2>&1 &
on_exit "kill_wait $!"
API=http://127.0.0.1:$API_PORT
wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" || { diag "$T/api.log"; exit 1; }
post() { curl -s -w '\n%{http_code}' -H 'Authorization: Bearer tok' \
	-H 'Content-Type: application/json' -d "$1" "$API/v1/jobs"; }

# ---- queued, then active: the same job ------------------------------------
r=$(post '{"type":"sleep","payload":{"ms":700},"unique_key":"report:42"}')
expect_eq "the first enqueue is accepted" 202 "$(tail -1 <<<"$r")"
a=$(head -1 <<<"$r" | jq -r .id)
r=$(post '{"type":"sleep","payload":{"ms":700},"unique_key":"report:42"}')
expect_eq "a second one while it is queued answers 200" 200 "$(tail -1 <<<"$r")"
expect_eq "with the live job, as a duplicate" "$a true queued" \
	"$(head -1 <<<"$r" | jq -r '"\(.id) \(.duplicate) \(.status)"')"
expect_eq "only one row in Postgres for the key" 1 "$(pg "SELECT count(*) FROM jobs WHERE unique_key = 'report:42'")"
expect_eq "the job shows its unique key" report:42 "$(curl -s -H 'Authorization: Bearer tok' "$API/v1/jobs/$a" | jq -r .unique_key)"
check "the CLI gives the same job too" sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq enqueue sleep --payload '{\"ms\":700}' --unique-key report:42 2>/dev/null)\" = $a ]"

start_worker w1 IDLE_TIMEOUT=0.5
curl -fs -XPOST "$w1_URL/wake?wait=0" >/dev/null
wait_until 5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $a | jq -r .status)\" = active ]"
r=$(post '{"type":"sleep","payload":{"ms":700},"unique_key":"report:42"}')
expect_eq "while it runs: the same job" "200 $a active" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r '"\(.id) \(.status)"')"
# ---- ended: the key is free ------------------------------------------------
wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $a | jq -r .status)\" = done ]"
r=$(post '{"type":"noop","unique_key":"report:42"}')
b=$(head -1 <<<"$r" | jq -r .id)
expect_eq "once it is done, a new job" 202 "$(tail -1 <<<"$r")"
check "with a new id" test "$b" != "$a"
expect_eq "two rows now" 2 "$(pg "SELECT count(*) FROM jobs WHERE unique_key = 'report:42'")"
curl -fs -XPOST "$w1_URL/wake" >/dev/null

# ---- retrying holds the key; failed for good releases it ---------------------
r=$(post '{"type":"fail","payload":{"retryable":true},"max_attempts":2,"unique_key":"flaky"}')
f=$(head -1 <<<"$r" | jq -r .id)
start_worker w2 IDLE_TIMEOUT=0.3 BACKOFF_BASE=1.5 BACKOFF_CAP=1.5 EXIT_ON_IDLE=false
curl -fs -XPOST "$w2_URL/wake" >/dev/null
expect_eq "the failing job waits for its retry" retrying "$(job_field "$f" status)"
r=$(post '{"type":"noop","unique_key":"flaky"}')
expect_eq "retrying holds the key" "200 $f" "$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .id)"
sleep 1.6 # the backoff: the next wake runs the last attempt
curl -fs -XPOST "$w2_URL/wake" >/dev/null
wait_until 5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $f | jq -r .status)\" = failed ]"
expect_eq "it failed for good" failed "$(job_field "$f" status)"
r=$(post '{"type":"noop","unique_key":"flaky"}')
expect_eq "the dead job let its key go" 202 "$(tail -1 <<<"$r")"

# ---- refused values -----------------------------------------------------------
r=$(post '{"type":"noop","unique_key":"has space"}')
expect_eq "a bad unique key is 400" "400 invalid_field" "$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .error.code)"
exit 0
