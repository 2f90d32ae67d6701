#!/usr/bin/env bash
# 64_shards - one busy queue sharded over 4 hash tags (QUEUES=busy*4) on a
# 3-master Redis Cluster: the API spreads jobs posted to "busy" (or to no
# queue, busy being the first) over busy#0..busy#3 in turn, a job with an
# idempotency key always meets the same shard (the same job back), the
# shards sit on more than one master, one worker drains them all, FIFO
# holds within a shard, and bad shard specs stop start-up with one line.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/test.sh

start_redis_cluster 3 0 || { not_ok "the cluster starts"; exit 1; }
TOKEN=tok-64
H="Authorization: Bearer $TOKEN"
CT="Content-Type: application/json"
WPORT=$($FREEPORT)
_start_api QUEUES="busy*4,other" WAKE_URL="http://127.0.0.1:$WPORT/wake" LOG_LEVEL=warn

codes() { sort | uniq -c | awk '{printf "%s:%s ", $2, $1}'; }
expect_eq "40 jobs posted to busy accepted" "202:40 " "$(curl -s -H "$H" -H "$CT" -o /dev/null \
	-w '%{http_code}\n' -d '{"type":"noop","queue":"busy"}' "$API/v1/jobs?n=[1-40]" | codes)"
expect_eq "8 jobs posted to no queue accepted" "202:8 " "$(curl -s -H "$H" -H "$CT" -o /dev/null \
	-w '%{http_code}\n' -d '{"type":"noop"}' "$API/v1/jobs?n=[1-8]" | codes)"
for k in 0 1 2 3; do
	expect_eq "busy#$k holds its turn of them" 12 "$(count_status "busy#$k" queued)"
done
a=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop","queue":"busy","idempotency_key":"k-64"}' "$API/v1/jobs")
b=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop","queue":"busy","idempotency_key":"k-64"}' "$API/v1/jobs")
expect_eq "the same idempotency key meets the same shard: the same job" \
	"$(jq -r .id <<<"$a")" "$(jq -r .id <<<"$b")"
expect_eq "...reported as a duplicate" true "$(jq -r .duplicate <<<"$b")"
owners=$(for k in 0 1 2 3; do cluster_owner "wakeq:{busy#$k}:x"; done | sort -u | wc -l)
check "the 4 shards sit on $owners masters" test "$owners" -ge 2
expect_eq "a shard is a queue of its own: GET names it" "busy#" \
	"$(curl -s -H "$H" "$API/v1/jobs/$(jq -r .id <<<"$a")" | jq -r .queue | cut -c1-5)"

# FIFO within a shard: 8 more jobs, in turn, two to each shard
for i in 1 2 3 4 5 6 7 8; do
	curl -s -H "$H" -H "$CT" -o /dev/null -d "{\"type\":\"noop\",\"queue\":\"busy\",\"payload\":{\"n\":$i}}" "$API/v1/jobs"
done

env PORT=$WPORT HOST=127.0.0.1 REDIS_URL="$REDIS_URL" QUEUES="busy*4" CONCURRENCY=1 \
	IDLE_TIMEOUT=1 EXIT_ON_IDLE=false LOG_LEVEL=info "$BIN/wakeq-worker" >"$T/worker.log" 2>&1 &
WPID=$!
on_exit "kill_wait $WPID KILL"
wait_until "$START_S" curl -sf -o /dev/null "http://127.0.0.1:$WPORT/healthz"
curl -s -X POST "http://127.0.0.1:$WPORT/wake" >/dev/null
total=0
for k in 0 1 2 3; do total=$((total + $(count_status "busy#$k" done))); done
expect_eq "one worker drained every shard" 57 "$total"
check "the worker ran jobs of each shard" bash -c \
	"for k in 0 1 2 3; do grep -q \"queue=busy#\$k \" '$T/worker.log' || exit 1; done"
# within each shard the jobs ran in the order they were enqueued (ids are
# time-ordered UUIDv7: the done log's order per queue must be sorted)
fifo=1
for k in 0 1 2 3; do
	grep "queue=busy#$k " "$T/worker.log" | grep -o 'job_id=[^ ]*' >"$T/ran.$k"
	sort -c "$T/ran.$k" 2>/dev/null || fifo=0
done
expect_eq "FIFO within each shard" 1 "$fifo"

for bad in "busy*1" "busy*17" "b#1*2"; do
	out=$(env PORT=0 REDIS_URL="$REDIS_URL" QUEUES="$bad" "$BIN/wakeq-worker" 2>&1 </dev/null)
	rc=$?
	check "QUEUES=$bad stops start-up with one line naming QUEUES (rc $rc)" \
		bash -c "[ $rc != 0 ] && [ \$(wc -l <<<'$out') = 1 ] && grep -q QUEUES <<<'$out'"
done
[ "${_t_failed:-0}" = 0 ] || { diag "$T/worker.log" | tail -20; diag "$T/api.log" | tail -20; }
exit 0
