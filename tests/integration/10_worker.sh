#!/usr/bin/env bash
# The worker end to end: real redis-server, real wakeq-worker processes,
# the wakeq CLI, over real HTTP.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

# --- a drain runs everything due, answers a summary, then exits when idle
ids=$(wq enqueue noop --count 20)
expect_eq "enqueue prints one id a job" 20 "$(echo "$ids" | wc -l)"
start_worker w1 IDLE_TIMEOUT=1 CONCURRENCY=4
out=$(curl -fs -XPOST "$w1_URL/wake")
expect_eq "held /wake answers the drain summary" 20 "$(echo "$out" | jq -r .drain.done)"
expect_eq "drain ended because idle" idle "$(echo "$out" | jq -r .drain.reason)"
expect_eq "all 20 jobs done" 20 "$(count_status default done)"
t0=$(date +%s%N)
check "worker exits on its own when idle" wait_until 5 exited "$w1_PID"
wait "$w1_PID"
expect_eq "idle exit status is 0" 0 "$?"
el=$((($(date +%s%N) - t0) / 1000000))
check "idle exit within IDLE_TIMEOUT + 1 s of the drain end (${el} ms)" test "$el" -lt 2000
expect_eq "no worker left registered" 0 "$(count_status default workers)"

# --- priority and FIFO order, seen through started_at with CONCURRENCY 1
# (20 ms jobs: long enough that the worker takes one at a time)
a=$(wq enqueue sleep --payload '{"ms":20}' --queue order --priority 5)
b=$(wq enqueue sleep --payload '{"ms":20}' --queue order --priority 1)
c=$(wq enqueue sleep --payload '{"ms":20}' --queue order --priority 5)
d=$(wq enqueue sleep --payload '{"ms":20}' --queue order --priority 0)
start_worker w2 IDLE_TIMEOUT=1 QUEUES=order
curl -fs -XPOST "$w2_URL/wake" >/dev/null
got=$(for pair in "a:$a" "b:$b" "c:$c" "d:$d"; do
	echo "$(wq status --queue order "${pair#*:}" | jq -r .started_at) ${pair%%:*}"
done | sort | awk '{printf "%s", $2}')
expect_eq "priority 0 first, FIFO inside a priority" dbac "$got"

# --- two concurrent /wake calls join one drain; wait=0 answers at once
wq enqueue sleep --payload '{"ms":400}' --queue join >/dev/null
start_worker w3 IDLE_TIMEOUT=1 QUEUES=join
curl -fs -XPOST "$w3_URL/wake" >"$T/j1" &
j1=$!
curl -fs -XPOST "$w3_URL/wake" >"$T/j2" &
j2=$!
code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$w3_URL/wake?wait=0")
expect_eq "/wake?wait=0 answers 202" 202 "$code"
wait $j1 $j2
expect_eq "both held wakes saw the same single job" "1 1" "$(jq -r .drain.jobs "$T/j1") $(jq -r .drain.jobs "$T/j2")"
drains=$(curl -fs "$w3_URL/metrics" | awk '/^wakeq_drains_total/ {print $2}')
expect_eq "one drain for three wakes" 1 "$drains"

# --- /wake auth
start_worker w4 IDLE_TIMEOUT=5 QUEUES=auth WAKE_TOKEN=s3cret
expect_eq "/wake without token is 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$w4_URL/wake?wait=0")"
expect_eq "/wake with a wrong token is 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3creT' -XPOST "$w4_URL/wake?wait=0")"
expect_eq "/wake with the token is 202" 202 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' -XPOST "$w4_URL/wake?wait=0")"
expect_eq "GET /nope is 404 JSON" not_found "$(curl -s "$w4_URL/nope" | jq -r .error.code)"
expect_eq "/readyz is 200 with redis up" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$w4_URL/readyz")"
expect_eq "/status without the token is 401 (it lists job ids)" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$w4_URL/status")"
expect_eq "/status with a wrong token is 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$w4_URL/status")"
check "/status with the token names the worker" sh -c "curl -fs -H 'Authorization: Bearer s3cret' '$w4_URL/status' | jq -e '.worker | length > 0' >/dev/null"
expect_eq "/healthz stays open with WAKE_TOKEN set" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$w4_URL/healthz")"
check "/metrics stays open and has the job histogram" sh -c "curl -fs '$w4_URL/metrics' | grep -q '^wakeq_job_duration_seconds_bucket'"

# --- retries with backoff, then the dead letter
id=$(wq enqueue fail --queue retry --payload '{"retryable":true,"message":"flaky"}' --max-attempts 3)
start_worker w5 IDLE_TIMEOUT=1 QUEUES=retry BACKOFF_BASE=0.05 BACKOFF_CAP=0.2
curl -fs -XPOST "$w5_URL/wake" >/dev/null
expect_eq "retryable failure ends in the dead letter after max attempts" failed "$(job_field "$id" status)"
expect_eq "three attempts were made" 3 "$(wq status --queue retry "$id" | jq -r .attempts)"
expect_eq "the error is kept" flaky "$(wq status --queue retry "$id" | jq -r .error)"
expect_eq "dead list shows it" "$id" "$(wq dead list --queue retry | jq -r '.[].id')"
id2=$(wq enqueue fail --queue retry --payload '{"retryable":false}' --max-attempts 5)
start_worker w6 IDLE_TIMEOUT=1 QUEUES=retry
curl -fs -XPOST "$w6_URL/wake" >/dev/null
expect_eq "non-retryable failure dies at once" "failed 1" "$(wq status --queue retry "$id2" | jq -r '"\(.status) \(.attempts)"')"
id3=$(wq enqueue nosuch.type --queue retry 2>/dev/null)
expect_eq "the CLI refuses an unknown type" "" "$id3"

# --- a delayed job: the idle worker wakes for it without an enqueue
id=$(wq enqueue noop --queue later --delay 0.6)
expect_eq "a delayed job is scheduled" scheduled "$(wq status --queue later "$id" | jq -r .status)"
start_worker w7 IDLE_TIMEOUT=2 QUEUES=later
curl -fs -XPOST "$w7_URL/wake?wait=0" >/dev/null
check "the delayed job runs when due" wait_until 3 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status --queue later $id | jq -r .status)\" = done ]"
lag=$(wq status --queue later "$id" | jq -r '(.started_at | sub("\\.[0-9]+Z";"Z") | fromdate) - (.run_at | sub("\\.[0-9]+Z";"Z") | fromdate)')
check "started within a second of its run time (lag ${lag}s)" test "${lag%.*}" -le 1

# --- idempotency through the CLI
k1=$(wq enqueue noop --queue idem --idempotency-key order-7)
k2=$(wq enqueue noop --queue idem --idempotency-key order-7)
expect_eq "same idempotency key gives the same job" "$k1" "$k2"

# --- JSON logs for Cloud Logging, with the trace of the /wake request
wq enqueue fail --queue logs --payload '{"message":"boom"}' >/dev/null
start_worker w8 IDLE_TIMEOUT=0.5 QUEUES=logs LOG_FORMAT=json GOOGLE_CLOUD_PROJECT=proj
curl -fs -H 'X-Cloud-Trace-Context: 0123456789abcdef0123456789abcdef/7;o=1' -XPOST "$w8_URL/wake" >/dev/null
check "every log line is a JSON object with severity and message" \
	sh -c "jq -e -s 'all(.severity and .message and .time)' '$T/w8.log' >/dev/null"
check "the drain's lines carry the wake's trace" \
	sh -c "jq -e -s 'map(select(.message == \"drain started\"))[0][\"logging.googleapis.com/trace\"] == \"projects/proj/traces/0123456789abcdef0123456789abcdef\"' '$T/w8.log' >/dev/null"
check "a dead-lettered job is logged at ERROR with its id" \
	sh -c "jq -e -s 'map(select(.message == \"job dead-lettered\"))[0] | .job_id and .error == \"boom\" and .severity == \"ERROR\"' '$T/w8.log' >/dev/null"

# --- bad configuration stops start-up with one line naming the variable
msg=$(IDLE_TIMEOUT=abc "$BIN/wakeq-worker" 2>&1)
expect_eq "bad IDLE_TIMEOUT exits 2" 2 "$?"
check "the message names IDLE_TIMEOUT ($msg)" contains "$msg" "wakeq-worker: bad IDLE_TIMEOUT 'abc'"
for tok in ' ' '	' 'two words'; do
	msg=$(WAKE_TOKEN="$tok" PORT=0 timeout 5 "$BIN/wakeq-worker" 2>&1)
	expect_eq "WAKE_TOKEN='$tok' stops start-up (exit 2)" 2 "$?"
	check "in one line naming WAKE_TOKEN ($msg)" contains "$msg" "wakeq-worker: bad WAKE_TOKEN: the token is blank or holds whitespace"
done
msg=$(QUEUES='a b' "$BIN/wakeq-worker" 2>&1)
check "bad QUEUES is refused ($msg)" contains "$msg" "bad QUEUES"
msg=$(REDIS_URL=rediss://127.0.0.1:1 PORT=0 "$BIN/wakeq-worker" 2>&1 | head -1)
check "rediss:// without TLS support is one clear line ($msg)" contains "$msg" "bad REDIS_URL: rediss:// needs TLS"
exit 0
