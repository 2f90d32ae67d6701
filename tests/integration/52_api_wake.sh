#!/usr/bin/env bash
# 52_api_wake - wake calls counted at a stub worker URL: none while a
# worker is alive, exactly one when none is, one in flight during a burst,
# a new one after a drain that left work behind, retries on failure,
# WAKE_TOKEN, Google identity tokens from a metadata server speaking the
# real protocol on loopback (cached), and backlog fan-out.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis

STUB_BIN=$BIN/tests/tools/wakestub
api_token tok-52

start_stub() { start_fake STUB "$STUB_BIN" "$@"; } # sets STUB (base URL), STUB_PID
stop_stub() { kill_wait "$STUB_PID"; }
wakes() { curl -s "$STUB/count" | jq -r .wakes; }
start_api() { _start_api DATABASE_URL= WAKE_URL="$STUB/wake" "$@"; }
post() { curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "$CT" -d "${1:-{\"type\":\"noop\"\}}" "$API/v1/jobs"; }
live_worker() { rcli zadd 'wakeq:{default}:workers' $(( $(date +%s%3N) + 600000 )) "$1" >/dev/null; }

# ---- no wake while a worker is alive, exactly one when none is ------------
start_stub
start_api WAKE_TOKEN=wake-tok
live_worker w1
for _ in 1 2 3 4 5; do post >/dev/null; done
sleep 1
expect_eq "no wake call while a worker is alive" 0 "$(wakes)"
rcli del 'wakeq:{default}:workers' >/dev/null
expect_eq "POST accepted with no worker" 202 "$(post)"
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 1 ]"
sleep 1
expect_eq "exactly one wake call when no worker is alive" 1 "$(wakes)"
expect_eq "wake carries WAKE_TOKEN" "Bearer wake-tok" "$(curl -s "$STUB/count" | jq -r .auth)"
expect_eq "and names its trigger: api" 1 "$(curl -s "$STUB/count" | jq -r .triggers.api)"
m=$(curl -s "$API/metrics")
check "metrics count the sent wake" grep -q '^wakeq_api_wakes_total{outcome="sent"} 1' <<<"$m"
stop_api
stop_stub

# ---- cancelling a job with a callback queues its webhook: a wake for it ----
rcli flushall >/dev/null
start_stub
start_api
live_worker w1
CID=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop","delay_s":3600,"callback_url":"http://127.0.0.1:9/hook"}' "$API/v1/jobs" | jq -r .id)
rcli del 'wakeq:{default}:workers' >/dev/null
n0=$(wakes)
expect_eq "cancel answers cancelled" cancelled "$(curl -s -H "$H" -X DELETE "$API/v1/jobs/$CID" | jq -r .status)"
expect_eq "the webhook delivery is queued" 1 "$(rcli zcard 'wakeq:{default}:pending')"
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -gt $n0 ]"
expect_eq "cancel with a callback and no worker: one wake" $((n0 + 1)) "$(wakes)"
stop_api
stop_stub

# ---- a burst while a wake is held open: one call; a drain that leaves
# work behind (the stub takes nothing) is followed by one more ----------------
rcli flushall >/dev/null
start_stub --hold 2
start_api
t0=$(date +%s%N)
for _ in $(seq 1 20); do post >/dev/null; done
t1=$(date +%s%N)
check "20 POSTs do not wait for the held wake ($(( (t1 - t0) / 1000000 )) ms)" test $(( (t1 - t0) / 1000000 )) -lt 1500
sleep 1
expect_eq "one wake in flight during a burst" 1 "$(wakes)"
wait_until 6 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 2 ]"
expect_eq "after the drain ended with due work and no worker: one more wake" 2 "$(wakes)"
stop_api
stop_stub

# ---- POST /v1/wake: a wake now, even with nothing queued; none more while
# that one is held open ----------------------------------------------------------------
rcli flushall >/dev/null
start_stub --hold 2
start_api
r=$(curl -s -w ' %{http_code}' -H "$H" -X POST "$API/v1/wake")
expect_eq "POST /v1/wake -> 202 requested" "requested 202" "$(jq -r .wake <<<"${r% *}") ${r##* }"
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 1 ]"
r=$(curl -s -w ' %{http_code}' -H "$H" -X POST "$API/v1/wake")
expect_eq "a second one while the first is held -> 202 in_flight" "in_flight 202" "$(jq -r .wake <<<"${r% *}") ${r##* }"
sleep 3
expect_eq "one wake call reached the worker (nothing due after it)" 1 "$(wakes)"
stop_api
stop_stub

# ---- failures are retried with backoff ------------------------------------------
rcli flushall >/dev/null
start_stub --status 503
start_api
post >/dev/null
sleep 2
n=$(wakes)
check "a 503 answer is retried with backoff ($n calls in 2 s)" test "$n" -ge 3 -a "$n" -le 8
stop_api
stop_stub

# ---- WAKE_AUTH=google: identity token from the metadata server -------------------
rcli flushall >/dev/null
start_stub
start_api WAKE_AUTH=google GCE_METADATA_HOST="${STUB#http://}"
post >/dev/null
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 1 ]"
auth=$(curl -s "$STUB/count" | jq -r .auth)
jwt=${auth#Bearer }
payload=$(cut -d. -f2 <<<"$jwt" | tr '_-' '/+')
while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="$payload="; done
aud=$(base64 -d <<<"$payload" 2>/dev/null | jq -r .aud)
expect_eq "wake carries an identity token for the worker's origin" "$STUB" "$aud"
sleep 0.5
post >/dev/null
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 2 ]"
expect_eq "two wakes, the token fetched once (cached)" "2 1" \
	"$(curl -s "$STUB/count" | jq -r '"\(.wakes) \(.metadata)"')"
stop_api
stop_stub
# a token is renewed 5 min before it expires, or after half its life
# when it lives less than 10 min (fetch_gcp_id_token): a 2 s one after 1 s
rcli flushall >/dev/null
start_stub --token-ttl 2
start_api WAKE_AUTH=google GCE_METADATA_HOST="${STUB#http://}"
post >/dev/null
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 1 ]"
sleep 1.2
post >/dev/null
wait_until 3 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 2 ]"
expect_eq "a token past half its short life is renewed" "2 2" \
	"$(curl -s "$STUB/count" | jq -r '"\(.wakes) \(.metadata)"')"
stop_api
stop_stub

# ---- backlog fan-out ----------------------------------------------------------
rcli flushall >/dev/null
start_stub --hold 10
start_api WAKE_FANOUT_MAX=3 WORKER_CONCURRENCY=1 WAKE_BACKLOG=2
live_worker w1
for _ in $(seq 1 10); do post >/dev/null; done
wait_until 5 bash -c "[ \"\$(curl -s $STUB/count | jq -r .wakes)\" -ge 3 ]"
sleep 1.5
post >/dev/null
sleep 1.5
expect_eq "10 pending jobs, 1 worker slot, backlog 2: fan-out stops at WAKE_FANOUT_MAX" 3 "$(wakes)"
expect_eq "each names its trigger: fanout" 3 "$(curl -s "$STUB/count" | jq -r .triggers.fanout)"
stop_api
stop_stub
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
