#!/usr/bin/env bash
# 19_retention - retention per queue, set through the real API and CLI,
# followed by the real worker: the queue's caps and TTLs (stored in Redis)
# win over the process's RESULT_TTL and defaults, and the counts keep
# all-time totals of done and failed jobs whatever was trimmed.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

TOKEN=tok _start_api QUEUES=default,keep
api() { curl -s -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' "$@"; }
code() { api -o /dev/null -w '%{http_code}' "$@"; }

# ---- the API: read, replace, refuse -------------------------------------------
r=$(api "$API/v1/queues/keep/settings")
expect_eq "no settings at first" "keep false null null" \
	"$(jq -r '"\(.queue) \(.paused) \(.done_max) \(.result_ttl_s)"' <<<"$r")"
r=$(api -XPUT -d '{"done_max":3,"dead_max":2,"result_ttl_s":600}' "$API/v1/queues/keep/settings")
expect_eq "PUT answers the settings" "3 2 600 null" \
	"$(jq -r '"\(.done_max) \(.dead_max) \(.result_ttl_s) \(.dead_ttl_s)"' <<<"$r")"
expect_eq "they are in Redis" 3 "$(rcli hget 'wakeq:{keep}:config' done_max)"
expect_eq "a fraction of a count is 400" 400 "$(code -XPUT -d '{"done_max":2.5}' "$API/v1/queues/keep/settings")"
expect_eq "an unknown setting is 400" unknown_field \
	"$(api -XPUT -d '{"colour":1}' "$API/v1/queues/keep/settings" | jq -r .error.code)"
expect_eq "not JSON is 400" invalid_json "$(api -XPUT -d 'nope' "$API/v1/queues/keep/settings" | jq -r .error.code)"
expect_eq "a refused PUT changed nothing" 3 "$(rcli hget 'wakeq:{keep}:config' done_max)"
expect_eq "a queue not served is 404" 404 "$(code "$API/v1/queues/nope/settings")"
expect_eq "DELETE is 405" 405 "$(code -XDELETE "$API/v1/queues/keep/settings")"

# ---- the worker follows them -------------------------------------------------------
wq enqueue noop --queue keep --count 10 >/dev/null
for i in 1 2 3 4; do wq enqueue fail --queue keep --payload '{"retryable":false}' >/dev/null; done
start_worker w1 QUEUES=keep IDLE_TIMEOUT=0.3 RESULT_TTL=86400 EXIT_ON_IDLE=false
curl -fs -XPOST "$w1_URL/wake" >/dev/null
q=$(api "$API/v1/queues" | jq -c .queues.keep)
expect_eq "done jobs kept: the queue's cap, not the worker's" 3 "$(jq -r .done <<<"$q")"
expect_eq "failed jobs kept: the queue's cap" 2 "$(jq -r .failed <<<"$q")"
expect_eq "all-time totals count every one" "10 4" "$(jq -r '"\(.done_total) \(.failed_total)"' <<<"$q")"
expect_eq "the CLI's stats too" "10 4" \
	"$(wq stats --json --queue keep | jq -r '"\(.keep.done_total) \(.keep.failed_total)"')"
id=$(wq jobs --queue keep --state done --json | jq -r '.[0].id')
# Done records age out in bulk (docs/QUEUE.md "Engine costs"): no TTL a
# job; the take after result_ttl_s deletes record and done-set entry.
expect_eq "a done record carries no TTL of its own" -1 "$(rcli ttl "wakeq:{keep}:job:$id")"
api -XPUT -d '{"done_max":3,"dead_max":2,"result_ttl_s":1}' "$API/v1/queues/keep/settings" >/dev/null
sleep 1.1
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "after result_ttl_s, the next take deleted the done record" 0 "$(rcli exists "wakeq:{keep}:job:$id")"
q=$(api "$API/v1/queues" | jq -c .queues.keep)
expect_eq "… and the done set's entries: 0 done kept, 10 all time" "0 10" \
	"$(jq -r '"\(.done) \(.done_total)"' <<<"$q")"

# ---- the CLI merges: one setting changes, the others stay ----------------------------
out=$(wq settings keep dead_ttl_s=1 done_max=null)
expect_eq "wakeq settings prints the result" "null 2 1" \
	"$(jq -r '"\(.done_max) \(.dead_max) \(.dead_ttl_s)"' <<<"$out")"
expect_eq "the API sees the change" 1 "$(api "$API/v1/queues/keep/settings" | jq -r .dead_ttl_s)"
wq settings keep done_max=x >/dev/null 2>&1
expect_eq "a bad value is a usage error" 2 "$?"
for n in $(api "$API/v1/queues/keep/settings" | jq -r 'keys[] | select(. != "queue" and . != "paused")'); do
	check "wakeq settings --help names $n" sh -c "$BIN/wakeq settings --help | grep -q '^  $n '"
done
id=$(wq enqueue fail --queue keep --payload '{"retryable":false}')
curl -fs -XPOST "$w1_URL/wake" >/dev/null
ttl=$(rcli pttl "wakeq:{keep}:job:$id")
check "a failed job expires after dead_ttl_s (pttl $ttl <= 1000)" test "$ttl" -gt 0 -a "$ttl" -le 1000
expect_eq "failed_total went on" 5 "$(count_status keep failed_total)"
exit 0
