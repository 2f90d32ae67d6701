#!/usr/bin/env bash
# 53_api_postgres - job records in a real Postgres: the row written with
# the enqueue, idempotency across both stores, cancel recorded, Redis
# FLUSHALL restored by reconcile (on demand and on the timer), final states
# copied back after a Postgres outage, reads from Postgres once Redis has
# let a job go.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis
start_postgres

QDRIVE=$BIN/tests/tools/qdrive
api_token tok-53

start_api() { _start_api DATABASE_URL="$DATABASE_URL" RECONCILE_MIN_AGE=0.001 "$@"; }
post() { curl -s -H "$H" -H "$CT" -d "$1" "$API/v1/jobs"; }
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
row() { pg "select $2 from jobs where id = '$1'"; }

start_api
r=$(post '{"type":"sleep","payload":{"ms":5},"priority":3,"idempotency_key":"pg-1","callback_url":"https://example.com/cb"}')
ID=$(jq -r .id <<<"$r")
expect_eq "row written with the job" "default sleep queued 3 pg-1 https://example.com/cb" \
	"$(row "$ID" "concat_ws(' ', queue, type, status, priority, idempotency_key, callback_url)")"
expect_eq "payload stored as jsonb" 5 "$(row "$ID" "payload->>'ms'")"
r2=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"sleep","payload":{"ms":5},"idempotency_key":"pg-1"}' "$API/v1/jobs")
expect_eq "same key -> 200 and the same id" "$ID 200" "$(jq -r .id <<<"${r2% *}") ${r2##* }"
expect_eq "one row for the key" 1 "$(pg "select count(*) from jobs where idempotency_key = 'pg-1'")"
S=$(post '{"type":"noop","delay_s":600}' | jq -r .id)
expect_eq "scheduled row" scheduled "$(row "$S" status)"
curl -s -o /dev/null -H "$H" -X DELETE "$API/v1/jobs/$S"
expect_eq "cancel recorded in postgres" cancelled "$(row "$S" status)"

# ---- FLUSHALL, then reconcile restores every job under its own id ----------
ids=()
for i in $(seq 1 10); do ids+=("$(post "{\"type\":\"noop\",\"payload\":{\"i\":$i}}" | jq -r .id)"); done
rcli flushall >/dev/null
expect_eq "redis is empty" 0 "$(rcli dbsize)"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile requeued 11 jobs (10 + the keyed one)" 11 "$(jq -r .requeued <<<"$r")"
back=0
for id in "${ids[@]}" "$ID"; do
	[ "$(rcli zscore 'wakeq:{default}:pending' "$id")" != "" ] && back=$((back + 1))
done
expect_eq "every job is pending again under its id" 11 "$back"
expect_eq "payload came back" 7 "$(curl -s -H "$H" "$API/v1/jobs/${ids[6]}" | jq -r .payload.i)"
expect_eq "cancelled row not requeued" 0 "$(rcli exists "wakeq:{default}:job:$S")"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "second pass finds nothing to do" "0 0" "$(jq -r '"\(.requeued) \(.finals)"' <<<"$r")"
rcli del 'wakeq:{default}:pending' >/dev/null
for id in "${ids[@]}" "$ID"; do rcli del "wakeq:{default}:job:$id" >/dev/null; done

# ---- Postgres outage: the work goes on in Redis, records converge after ------
P=$(post '{"type":"noop"}' | jq -r .id)
stop_postgres
out=$("$QDRIVE" "$REDIS_URL" default run 1 10)
expect_eq "job runs while postgres is down" "$P done" "$out"
expect_eq "GET still answers from redis" done "$(curl -s -H "$H" "$API/v1/jobs/$P" | jq -r .status)"
restart_postgres
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $API/readyz) = 200 ]"
expect_eq "row still queued before reconcile" queued "$(row "$P" status)"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile copied one final state" 1 "$(jq -r .finals <<<"$r")"
expect_eq "row converged: done with result and attempts" "done true 1" \
	"$(row "$P" "concat_ws(' ', status, result->>'ok', attempts)")"
check "row has finished_at" test -n "$(row "$P" finished_at)"
# Redis lets the job go: GET answers from Postgres
rcli del "wakeq:{default}:job:$P" >/dev/null
j=$(curl -s -w ' %{http_code}' -H "$H" "$API/v1/jobs/$P")
expect_eq "GET after expiry answers from postgres" "done true 200" \
	"$(jq -r '"\(.status) \(.result.ok)"' <<<"${j% *}") ${j##* }"
ev=$(timeout 5 curl -sN -H "$H" "$API/v1/jobs/$P/events")
expect_eq "events after expiry: end from postgres" "event: end" "$(grep '^event: ' <<<"$ev")"
end_id=$(sed -n 's/^id: //p' <<<"$ev")
expect_eq "and a reconnect past its end (Last-Event-ID) is told to stop: 204" 204 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "Last-Event-ID: $end_id" "$API/v1/jobs/$P/events")"
stop_api

# ---- the timer -------------------------------------------------------------------
start_api RECONCILE_INTERVAL=0.5
T1=$(post '{"type":"noop"}' | jq -r .id)
rcli flushall >/dev/null
wait_until 5 bash -c "[ \"\$(redis-cli -p $REDIS_PORT exists 'wakeq:{default}:job:$T1')\" = 1 ]"
expect_eq "reconcile timer restores a flushed job" 1 "$(rcli exists "wakeq:{default}:job:$T1")"
stop_api

# ---- a frozen Postgres (SIGSTOP): POST fails fast, and nothing it was ------
# told failed exists after Postgres wakes (the statement it sent runs then)
rcli flushall >/dev/null
pg 'delete from jobs'
start_api PG_TIMEOUT=2
expect_eq "POST works before the freeze" 202 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"
# several pooled connections open before the freeze (readyz pings on each
# HTTP thread at once)
pids=()
for i in 1 2 3 4 5 6; do curl -s -o /dev/null "$API/readyz" & pids+=($!); done
wait "${pids[@]}"
rows=$(pg 'select count(*) from jobs')
pm=$(head -1 "$PG_DIR/data/postmaster.pid")
FROZEN="$pm $(pgrep -P "$pm" | tr '\n' ' ')"
on_exit "kill -CONT $FROZEN"
kill -STOP $FROZEN
before=$(rcli --scan | sort)
# a burst: POST 1, then 2 and 3 while 1 waits out its deadline. The ones
# gathered behind it are answered at once when it fails (the store does not
# ask a silent Postgres again for a second), not after a deadline of their
# own on another pooled connection (3.4 and 3.7 s before)
frozen_post() {
	local t0 r ms
	t0=$(date +%s%N)
	r=$(curl -s -D "$T/hf$1" -w ' %{http_code}' --max-time 8 -H "$H" -H "$CT" \
		-d "{\"type\":\"noop\",\"payload\":{\"frozen\":$1},\"idempotency_key\":\"frozen-$1\"}" "$API/v1/jobs")
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "$(jq -r .error.code <<<"${r% *}" 2>/dev/null) ${r##* } $ms" >"$T/frozen$1"
}
pids=()
for i in 1 2 3; do frozen_post $i & pids+=($!); sleep 0.3; done
wait "${pids[@]}"
for i in 1 2 3; do
	read -r code st ms <"$T/frozen$i"
	expect_eq "frozen postgres: POST $i -> 503 unavailable" "unavailable 503" "$code $st"
	check "frozen postgres: POST $i answered within PG_TIMEOUT + 0.5 s ($ms ms)" test "$ms" -lt 2500
	check "frozen postgres: POST $i has Retry-After" grep -qi '^Retry-After:' "$T/hf$i"
done
expect_eq "frozen postgres: nothing reached redis" "$before" "$(rcli --scan | sort)"
kill -CONT $FROZEN
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $API/readyz) = 200 ]"
expect_eq "POST works again once postgres wakes" 202 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"
sleep 0.5 # what the frozen server had unread has run by now
expect_eq "no row for the jobs answered 503" "0 $((rows + 1))" \
	"$(pg "select concat_ws(' ', count(*) filter (where payload ? 'frozen'), count(*)) from jobs")"
expect_eq "their keys are free: reusing one makes a new job" 202 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "$CT" -d '{"type":"noop","idempotency_key":"frozen-1"}' "$API/v1/jobs")"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile finds nothing to enqueue" 0 "$(jq -r .requeued <<<"$r")"
stop_api
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
