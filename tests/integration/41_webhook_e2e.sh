#!/usr/bin/env bash
# Callbacks and outbound HTTP through the real worker: a job with a
# callback_url ends, the queue enqueues its webhook.deliver job, the worker
# POSTs it signed, a receiver verifies the signature; a receiver that
# answers 503 gets the delivery again. And an http.request job.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
SECRET=whsec-$RANDOM

"$BIN/tests/tools/hookrecv" "$SECRET" 1 >"$T/recv.port" 2>"$T/recv.log" &
rpid=$!
on_exit "kill_wait $rpid"
wait_until 5 test -s "$T/recv.port"
RP=$(head -1 "$T/recv.port")
R=http://127.0.0.1:$RP

id=$(wq enqueue sleep --payload '{"ms":5}' --callback-url "$R/hook")
start_worker w IDLE_TIMEOUT=3 WEBHOOK_SECRET="$SECRET" ALLOW_PRIVATE_NETWORKS=loopback \
	BACKOFF_BASE=0.1 BACKOFF_CAP=0.2
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
check "the webhook arrives after one refused delivery" \
	wait_until 10 sh -c "[ \"\$(curl -fs $R/last | jq .count)\" = 2 ]"
last=$(curl -fs "$R/last")
expect_eq "both deliveries carried a valid signature" 2 "$(echo "$last" | jq .verified)"
expect_eq "the body names the job" "$id" "$(echo "$last" | jq -r .body.id)"
expect_eq "and its final state and result" "done 5" "$(echo "$last" | jq -r '"\(.body.status) \(.body.result.slept_ms)"')"
check "with finished_at in RFC 3339" sh -c "echo '$last' | jq -e '.body.finished_at | test(\"^[0-9-]+T[0-9:.]+Z$\")' >/dev/null"

# A failed job's webhook says why.
f=$(wq enqueue fail --payload '{"message":"nope"}' --callback-url "$R/hook")
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
check "a failed job's webhook arrives" wait_until 10 sh -c "[ \"\$(curl -fs $R/last | jq -r .body.id)\" = $f ]"
expect_eq "with status failed and the error" "failed nope" "$(curl -fs "$R/last" | jq -r '"\(.body.status) \(.body.error)"')"

# http.request: an outbound call, allowed to loopback here.
h=$(wq enqueue http.request --payload "{\"url\":\"$R/last\",\"method\":\"GET\",\"timeout_s\":5}")
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
check "http.request ran" wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $h | jq -r .status)\" = done ]"
expect_eq "and recorded the answer's status" 200 "$(wq status "$h" | jq -r .result.status)"

# Without ALLOW_PRIVATE_NETWORKS the same call is refused, for good.
start_worker w2 QUEUES=strict IDLE_TIMEOUT=1
s=$(wq enqueue http.request --queue strict --payload "{\"url\":\"$R/last\"}" --max-attempts 3)
curl -fs -XPOST "$w2_URL/wake" >/dev/null
expect_eq "a loopback URL is refused without ALLOW_PRIVATE_NETWORKS, no retry" "failed 1" \
	"$(wq status --queue strict "$s" | jq -r '"\(.status) \(.attempts)"')"
exit 0
