#!/usr/bin/env bash
# 23_pushback - a 429 with Retry-After pushes back the whole group
# (docs/QUEUE.md "Push-back"): http.request jobs call a local server
# (tests/tools/hitcount) that answers the first call 429 with Retry-After;
# the job is queued again without its attempt, the other jobs of its group
# wait until then, other groups run meanwhile; the worker sleeps until the
# time within IDLE_TIMEOUT, and otherwise ends its drain and the API's
# waker wakes it at that time, as for a delayed job.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

# enq QUEUE GROUP URL
enq() {
	wq enqueue http.request --queue "$1" --group "$2" --payload "{\"url\":\"$3\"}" >/dev/null 2>&1
}
# seconds (float) between two µs times
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }
attempts() { wq jobs --queue "$1" --state done --limit 100 --json | jq -r '[.[].attempts] | unique | join(",")'; }

# ---- within IDLE_TIMEOUT: the worker sleeps until the group may go --------------
start_hitcount h1
for i in 1 2 3 4; do enq pb a "$h1_HIT?k=a$i&ms=50&span=1&busy=2"; done
for i in 1 2 3 4 5 6; do enq pb b "$h1_HIT?k=b$i&ms=100&span=1"; done
start_worker w1 QUEUES=pb CONCURRENCY=1 IDLE_TIMEOUT=4 ALLOW_PRIVATE_NETWORKS=loopback \
	EXIT_ON_IDLE=false
out=$(curl -fs -m 30 -XPOST "$w1_URL/wake")
expect_eq "all 10 jobs done, none failed" "10 0" \
	"$(wq stats --json --queue pb | jq -r '"\(.pb.done) \(.pb.failed)"')"
expect_eq "one 429" 1 "$(awk '$5 == 429' "$T/h1.hits" | wc -l)"
t429=$(awk '$5 == 429 { print $4 }' "$T/h1.hits")
expect_eq "each job answered 200 once" 10 "$(awk '$5 == 200 { print $2 }' "$T/h1.hits" | sort -u | wc -l)"
first_a=$(awk '$5 == 200 && $2 ~ /^a/ { print $3 }' "$T/h1.hits" | sort -n | head -1)
d=$(secs "$t429" "$first_a")
check "group a waited out Retry-After: 2 ($d s after the 429)" \
	awk -v d="$d" 'BEGIN { exit !(d >= 1.95 && d < 3.5) }'
nb=$(awk -v t="$t429" -v u="$first_a" '$5 == 200 && $2 ~ /^b/ && $3 > t && $4 < u' "$T/h1.hits" | wc -l)
check "group b ran meanwhile ($nb of its 6 jobs between)" test "$nb" -ge 5
expect_eq "no attempt lost: every job done on attempt 1" 1 "$(attempts pb)"
expect_eq "one drain (the worker slept until the group's time)" 1 \
	"$(curl -fs "$w1_URL/metrics" | awk '/^wakeq_drains_total/ {print $2}')"
expect_eq "the drain counts the push-back as a requeue" 1 "$(jq -r .drain.requeued <<<"$out")"
expect_eq "no group left in Redis" "0 0" \
	"$(echo "$(rcli scard 'wakeq:{pb}:gin') $(rcli zcard 'wakeq:{pb}:gwait')")"
kill_wait "$w1_PID"

# ---- later than IDLE_TIMEOUT: the drain ends, a wake comes at the group's time ----
start_hitcount h2
start_worker w2 QUEUES=pb2 CONCURRENCY=1 IDLE_TIMEOUT=0.5 ALLOW_PRIVATE_NETWORKS=loopback \
	EXIT_ON_IDLE=false
TOKEN=tok _start_api QUEUES=pb2 WAKE_URL="$w2_URL/wake"
for i in 1 2; do
	curl -fs -o /dev/null -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
		-d "{\"type\":\"http.request\",\"queue\":\"pb2\",\"group\":\"c\",\"payload\":{\"url\":\"$h2_HIT?k=c$i&span=1&busy=3\"}}" \
		"$API/v1/jobs"
done
check "the first call was answered 429" wait_until 5 grep -q ' 429$' "$T/h2.hits"
check "the drain ended meanwhile (no worker waits 3 s for the group)" \
	wait_until 2.5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pb2 | jq -r .pb2.workers)\" = 0 ]"
expect_eq "nothing ran during the hold" 1 "$(wc -l <"$T/h2.hits")"
check "the API's waker woke the worker at the group's time: both done" \
	wait_until 8 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue pb2 | jq -r .pb2.done)\" = 2 ]"
t429=$(awk '$5 == 429 { print $4 }' "$T/h2.hits")
first=$(awk '$5 == 200 { print $3 }' "$T/h2.hits" | sort -n | head -1)
d=$(secs "$t429" "$first")
check "3 s after the 429 ($d s)" awk -v d="$d" 'BEGIN { exit !(d >= 2.95 && d < 5) }'
expect_eq "no attempt lost" 1 "$(attempts pb2)"
check "in two drains" wait_until 3 sh -c \
	"[ \"\$(curl -fs $w2_URL/metrics | awk '/^wakeq_drains_total/ {print \$2}')\" = 2 ]"
throttled=$(curl -fs "$API/metrics" | awk '/^wakeq_jobs_total\{.*queue="pb2".*outcome="throttled"/ {print $2}')
expect_eq "counted as throttled in the queue's metrics" 1 "${throttled:-0}"
exit 0
