#!/usr/bin/env bash
# 64_shards - one busy queue sharded over 4 hash tags (QUEUES=busy*4) on a
# 3-master Redis Cluster: the API spreads jobs posted to "busy" (or to no
# queue, busy being the first) over busy#0..busy#3 in turn, a job with an
# idempotency key always meets the same shard (the same job back), the
# shards sit on more than one master, one worker drains them all, FIFO
# holds within a shard; a flow or batch posted to busy (or to none) goes
# whole to one shard, in turn, and runs to done; a schedule goes to the
# shard of its name and is found, paused and deleted by name; a queue not
# served is 400 alike on every route; bad shard specs stop start-up with
# one line.
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

# ---- flows, batches and schedules: one shard each ------------------------------
r=$(api_post /v1/flows '{"queue":"busy","parent":{"type":"noop"},"children":[{"type":"noop"},{"type":"noop","queue":"busy"}]}' -w '\n%{http_code}')
expect_eq "a flow posted to busy is accepted" 202 "$(tail -1 <<<"$r")"
fq=$(head -1 <<<"$r" | jq -r .queue)
check "...into one shard ($fq)" grep -qx 'busy#[0-3]' <<<"$fq"
fid=$(head -1 <<<"$r" | jq -r .id)
expect_eq "all its jobs live in that shard" "$fq $fq $fq" \
	"$(for id in $fid $(head -1 <<<"$r" | jq -r '.children[].id'); do api_field "$id" queue; done | xargs)"
wait_final "$fid"
expect_eq "the worker (busy*4) runs it to done" done "$(api_field "$fid" status)"
expect_eq "a flow posted to the shard busy#2 by name stays there" "busy#2" \
	"$(api_post /v1/flows '{"queue":"busy#2","parent":{"type":"noop"},"children":[{"type":"noop"}]}' | jq -r .queue)"
# with no queue named (busy*4 comes first), each in turn goes to the next shard
shards_of() { for i in 1 2 3 4 5 6 7 8; do api_post "$1" "$2" | jq -r .queue; done | sort -u | xargs; }
expect_eq "8 flows posted to no queue spread over the 4 shards" "busy#0 busy#1 busy#2 busy#3" \
	"$(shards_of /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop"}]}')"
expect_eq "8 batches posted to no queue spread over the 4 shards" "busy#0 busy#1 busy#2 busy#3" \
	"$(shards_of /v1/batches '{"jobs":[{"type":"noop"},{"type":"noop"}]}')"
r=$(api_post /v1/batches '{"queue":"busy","jobs":[{"type":"noop"},{"type":"noop"},{"type":"noop"}]}')
bid=$(jq -r .id <<<"$r")
expect_eq "a batch posted to busy: its jobs in its shard" \
	"$(jq -r .queue <<<"$r") $(jq -r .queue <<<"$r") $(jq -r .queue <<<"$r")" \
	"$(for id in $(jq -r '.jobs[]' <<<"$r"); do api_field "$id" queue; done | xargs)"
wait_final "$bid"
expect_eq "...counted by its callback once they ran" "finished 3 3 0" \
	"$(curl -s -H "$H" "$API/v1/batches/$bid" | jq -r '"\(.status) \(.total) \(.done) \(.pending)"')"

# a schedule goes to the shard of its name: the same name, the same shard
sch='{"name":"tick64","queue":"busy","cron":"* * * * * *","overlap":"allow","job":{"type":"noop"}}'
r=$(api_post /v1/schedules "$sch" -w '\n%{http_code}')
expect_eq "a schedule posted to busy is created" 201 "$(tail -1 <<<"$r")"
sq=$(head -1 <<<"$r" | jq -r .queue)
check "...in one shard ($sq)" grep -qx 'busy#[0-3]' <<<"$sq"
r=$(api_post /v1/schedules "${sch/\"queue\":\"busy\",/}" -w '\n%{http_code}')
expect_eq "posted again (to no queue: busy comes first) it is replaced in that shard" "200 $sq" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .queue)"
expect_eq "GET /v1/schedules/tick64 finds it there" "tick64 $sq" \
	"$(curl -s -H "$H" "$API/v1/schedules/tick64" | jq -r '"\(.name) \(.queue)"')"
expect_eq "listed once" 1 "$(curl -s -H "$H" "$API/v1/schedules" | jq '[.schedules[] | select(.name == "tick64")] | length')"
fired() { [ "$(curl -s -H "$H" "$API/v1/schedules/tick64" | jq -r .fired)" -ge 1 ]; }
wait_until 10 fired
expect_eq "it fires a job into its shard" "$sq" \
	"$(api_field "$(curl -s -H "$H" "$API/v1/schedules/tick64" | jq -r .last_job_id)" queue)"
expect_eq "pause by name" "true $sq" \
	"$(curl -s -XPOST -H "$H" "$API/v1/schedules/tick64/pause" | jq -r '"\(.paused) \(.queue)"')"
expect_eq "delete by name" "true $sq" \
	"$(curl -s -XDELETE -H "$H" "$API/v1/schedules/tick64" | jq -r '"\(.deleted) \(.queue)"')"
expect_eq "then it is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' -H "$H" "$API/v1/schedules/tick64")"
# one made in another shard of the set (named there, or by a version that
# put schedules posted to no queue on NAME#0) is replaced where it is
for k in 0 1 2 3; do [ "busy#$k" = "$sq" ] || { other="busy#$k"; break; }; done
r=$(api_post /v1/schedules "$(jq -c --arg q "$other" '.queue = $q' <<<"$sch")" -w '\n%{http_code}')
expect_eq "tick64 made in $other by name" "201 $other" "$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .queue)"
r=$(api_post /v1/schedules "$sch" -w '\n%{http_code}')
expect_eq "posted to busy again, it is replaced in $other, not made twice in $sq" "200 $other" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .queue)"
expect_eq "... listed once" 1 "$(curl -s -H "$H" "$API/v1/schedules" | jq '[.schedules[] | select(.name == "tick64")] | length')"
curl -s -o /dev/null -XDELETE -H "$H" "$API/v1/schedules/tick64"

# a queue not served is 400, with the same words on every route that makes work
nope="field 'queue': 'nope' is not served here (QUEUES=busy*4,other)"
for route in "/v1/jobs {\"type\":\"noop\",\"queue\":\"nope\"}" \
	"/v1/flows {\"queue\":\"nope\",\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"}]}" \
	"/v1/batches {\"queue\":\"nope\",\"jobs\":[{\"type\":\"noop\"}]}" \
	"/v1/schedules {\"name\":\"s\",\"queue\":\"nope\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"noop\"}}"; do
	r=$(api_post "${route%% *}" "${route#* }" -w '\n%{http_code}')
	expect_eq "POST ${route%% *} to queue nope: 400 naming it" "400 $nope" \
		"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .error.message)"
done

for bad in "busy*1" "busy*17" "b#1*2"; do
	out=$(env PORT=0 REDIS_URL="$REDIS_URL" QUEUES="$bad" "$BIN/wakeq-worker" 2>&1 </dev/null)
	rc=$?
	check "QUEUES=$bad stops start-up with one line naming QUEUES (rc $rc)" \
		bash -c "[ $rc != 0 ] && [ \$(wc -l <<<'$out') = 1 ] && grep -q QUEUES <<<'$out'"
done
[ "${_t_failed:-0}" = 0 ] || { diag "$T/worker.log" | tail -20; diag "$T/api.log" | tail -20; }
exit 0
