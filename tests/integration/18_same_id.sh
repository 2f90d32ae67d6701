#!/usr/bin/env bash
# 18_same_id - a worker serving two queues that lease jobs of the same id
# under the same token: a cancel in one queue stops that queue's job only.
# Ids are UUIDv7 made by the CLI, the API or the library, so only a record
# copied between queues (by hand, by a migration script) makes two jobs of
# one id; tokens are numbered by each queue's own sequence, so two queues
# hand out the same numbers. The heartbeat must name a lease by queue, id
# and token (internal/worker/heartbeat.c find_task).
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

id=$(wq enqueue sleep --queue qa --payload '{"ms":4000}' 2>/dev/null)
# the same job in qb: its record copied and queued under the same score;
# qb's sequence set to qa's, so that the two takes draw the same token
rcli copy "wakeq:{qa}:job:$id" "wakeq:{qb}:job:$id" >/dev/null
rcli zadd "wakeq:{qb}:pending" "$(rcli zscore "wakeq:{qa}:pending" "$id")" "$id" >/dev/null
rcli set "wakeq:{qb}:seq" "$(rcli get "wakeq:{qa}:seq")" >/dev/null

# qb first: its job is leased first and takes the first slot; LEASE 1.5 s
# renews every 0.5 s, so the cancel reaches the worker before the job ends
start_worker w QUEUES=qb,qa CONCURRENCY=2 LEASE=1.5 IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false
curl -fs -XPOST "$w_URL/wake" >"$T/wake.out" &
held=$!
both_active() {
	[ "$(rcli hget "wakeq:{qa}:job:$id" status)" = active ] &&
		[ "$(rcli hget "wakeq:{qb}:job:$id" status)" = active ]
}
check "both jobs run" wait_until 10 both_active
tok_a=$(rcli hget "wakeq:{qa}:job:$id" token)
tok_b=$(rcli hget "wakeq:{qb}:job:$id" token)
expect_eq "under the same token (what this test is about)" "$tok_a" "$tok_b"

wq cancel "$id" --queue qa >/dev/null
wait $held
expect_eq "the job cancelled in qa ended cancelled" cancelled \
	"$(rcli hget "wakeq:{qa}:job:$id" status)"
expect_eq "its namesake in qb, not cancelled, ran to its end" done \
	"$(rcli hget "wakeq:{qb}:job:$id" status)"
expect_eq "the drain ran both" 2 "$(jq -r .drain.jobs "$T/wake.out")"
kill_wait "$w_PID"
exit 0
