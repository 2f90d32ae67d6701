#!/usr/bin/env bash
# 24_flows - flows and batches through the real API (with Postgres), CLI
# and worker: a flow of 1 parent + 50 children is created in one request,
# the parent runs after every child and reads their results; a batch's
# callback job (and its webhook) comes once every job has ended, with the
# counts, exactly once per batch even when two workers settle its last
# jobs at the same moment (x100); bad flows and batches change nothing.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
start_postgres
SECRET=whsec-$RANDOM

# a persistent handler that answers with the dependencies it was handed
cat >"$T/join.py" <<'PY'
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({"result": {"deps": req.get("dependencies")}}), flush=True)
PY
export WAKEQ_HANDLER_FLOW__JOIN="{\"command\":[\"python3\",\"$T/join.py\"],\"persistent\":true}"

TOKEN=tok
_start_api DATABASE_URL="$DATABASE_URL"
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
call() { curl -s -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -d "$2" "$API$1"; }
get() { curl -fs -H "Authorization: Bearer $TOKEN" "$API$1"; }
tus() {
	wq status "$1" | jq -r ".$2" |
		python3 -c 'import sys,datetime;t=sys.stdin.read().strip();d=datetime.datetime.strptime(t,"%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc);print(int(d.timestamp()*1e6))'
}

"$BIN/tests/tools/hookrecv" "$SECRET" >"$T/recv.port" 2>"$T/recv.log" &
on_exit "kill_wait $!"
wait_until 5 test -s "$T/recv.port"
R=http://127.0.0.1:$(head -1 "$T/recv.port")

# ---- a flow: 1 parent + 50 children ------------------------------------------------
kids=$(jq -cn '[range(50) | {type: "sleep", payload: {ms: (. % 5 * 10)}}]')
r=$(call /v1/flows "{\"parent\":{\"type\":\"noop\",\"labels\":{\"k\":\"flow\"}},\"children\":$kids}")
expect_eq "a flow is accepted" 202 "$(tail -1 <<<"$r")"
doc=$(head -1 <<<"$r")
p=$(jq -r .id <<<"$doc")
expect_eq "with the parent waiting and 50 children queued" "waiting 50 queued" \
	"$(jq -r '"\(.status) \(.children | length) \(.children | map(.status) | unique | join(","))"' <<<"$doc")"
expect_eq "the parent depends on the children, in order" \
	"$(jq -c '[.children[].id]' <<<"$doc")" "$(get "/v1/jobs/$p" | jq -c .depends_on)"
expect_eq "all 51 rows in Postgres" 51 "$(pg "SELECT count(*) FROM jobs")"
start_worker w1 IDLE_TIMEOUT=0.5 CONCURRENCY=8 EXIT_ON_IDLE=false WEBHOOK_SECRET="$SECRET" \
	ALLOW_PRIVATE_NETWORKS=loopback
out=$(curl -fs -XPOST "$w1_URL/wake")
expect_eq "one drain runs the flow" 51 "$(jq -r .drain.jobs <<<"$out")"
expect_eq "the parent is done" done "$(job_field "$p" status)"
last=0
for id in $(jq -r '.children[].id' <<<"$doc"); do
	f=$(tus "$id" finished_at)
	[ "$f" -gt "$last" ] && last=$f
done
check "the parent started after the last child finished" test "$(tus "$p" started_at)" -ge "$last"
deps=$(get "/v1/jobs/$p")
expect_eq "the parent reads its children's results" "50 done 40" \
	"$(jq -r '"\(.dependencies | length) \(.dependencies | map(.status) | unique | join(",")) \(.dependencies[4].result.slept_ms)"' <<<"$deps")"
expect_eq "wakeq status shows them too" 50 "$(wq status "$p" | jq '.dependencies | length')"

# ---- a tree: grandchildren run before their parent, which runs before the root ---------
r=$(call /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"sleep","payload":{"ms":50},"children":[{"type":"sleep","payload":{"ms":30}},{"type":"sleep","payload":{"ms":10}}]},{"type":"noop"}]}')
expect_eq "a tree is accepted" 202 "$(tail -1 <<<"$r")"
tree=$(head -1 <<<"$r")
root=$(jq -r .id <<<"$tree")
mid=$(jq -r '.children[0].id' <<<"$tree")
g0=$(jq -r '.children[0].children[0].id' <<<"$tree")
g1=$(jq -r '.children[0].children[1].id' <<<"$tree")
expect_eq "the answer mirrors it: the middle waits for two, the leaves are queued" "waiting waiting queued queued" \
	"$(jq -r '"\(.status) \(.children[0].status) \(.children[0].children | map(.status) | join(" "))"' <<<"$tree")"
expect_eq "the middle job depends on its own children" "[\"$g0\",\"$g1\"]" "$(get "/v1/jobs/$mid" | jq -c .depends_on)"
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "all done" "done done done done" \
	"$(job_field "$root" status) $(job_field "$mid" status) $(job_field "$g0" status) $(job_field "$g1" status)"
check "the middle started after both grandchildren" sh -c \
	"[ $(tus "$mid" started_at) -ge $(tus "$g0" finished_at) ] && [ $(tus "$mid" started_at) -ge $(tus "$g1" finished_at) ]"
check "the root after the middle" test "$(tus "$root" started_at)" -ge "$(tus "$mid" finished_at)"

# ---- a handler gets its dependencies' results --------------------------------------
r=$(call /v1/flows '{"parent":{"type":"flow.join"},"children":[{"type":"sleep","payload":{"ms":1}},{"type":"sleep","payload":{"ms":2}},{"type":"fail","max_attempts":1}],"on_dependency_failure":"ignore"}')
jp=$(head -1 <<<"$r" | jq -r .id)
k0=$(head -1 <<<"$r" | jq -r '.children[0].id')
k2=$(head -1 <<<"$r" | jq -r '.children[2].id')
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "the parent's handler request carried {id: result} of its children" "3 1 null" \
	"$(wq status "$jp" | jq -r ".result.deps | \"\(length) \(.[\"$k0\"].slept_ms) \(.[\"$k2\"])\"")"

# ---- bad flows change nothing ------------------------------------------------------
rows=$(pg "SELECT count(*) FROM jobs")
bad() {
	r=$(call "$1" "$2")
	expect_eq "refused: $3" "400 $4" \
		"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r '"\(.error.code) \(.error.message)"')"
}
bad /v1/flows '{"children":[{"type":"noop"}]}' "no parent" "invalid_field field 'parent' is required"
bad /v1/flows '{"parent":{"type":"noop"},"children":[]}' "no children" \
	"invalid_field field 'children': expected an array of 1 or more jobs"
bad /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop","children":[{"type":"noop"},{"type":"noop","children":{}}]}]}' \
	"a grandchild's bad children" \
	"invalid_field children[0].children[1]: field 'children': expected an array of 1 or more jobs"
bad /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop","children":[{"type":"nope"}]}]}' \
	"a grandchild of an unknown type" \
	"unknown_type children[0].children[0]: field 'type': unknown job type 'nope' (known: $(jq -r '.error.message | sub(".*known: "; "") | rtrimstr(")")' <<<"$(call /v1/jobs '{"type":"nope"}' | head -1)"))"
bad /v1/flows '{"parent":{"type":"noop","children":[{"type":"noop"}]},"children":[{"type":"noop"}]}' \
	"children inside the parent" "unknown_field parent: unknown field 'children'"
big=$(jq -cn '[range(1000) | {type: "noop"}]')
bad /v1/flows "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\",\"children\":$big}]}" \
	"over 1000 jobs" "invalid_field a flow holds at most 1000 jobs"
bad /v1/flows "{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"},{\"type\":\"noop\",\"depends_on\":[\"$p\"]}]}" \
	"a child with its own depends_on" \
	"invalid_field children[1]: field 'depends_on' is not allowed here (the flow or batch links its jobs)"
bad /v1/flows '{"parent":{"type":"noop","unique_key":"u"},"children":[{"type":"noop"}]}' "a unique key" \
	"invalid_field parent: field 'unique_key' is not allowed here (the flow or batch links its jobs)"
bad /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop","queue":"other"}]}' "another queue" \
	"invalid_field children[0]: field 'queue': 'other' is not the flow's queue 'default' (linked jobs share one queue)"
r=$(call /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"nope"}]}')
msg=$(head -1 <<<"$r" | jq -r '"\(.error.code) \(.error.message)"')
check "refused: an unknown type, named with its place" \
	test "${msg%% (known:*}" = "unknown_type children[0]: field 'type': unknown job type 'nope'"
bad /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop"}],"on_dependency_failure":"x"}' "a bad policy" \
	"invalid_field field 'on_dependency_failure': expected fail, cancel or ignore"
bad /v1/flows '{"parent":{"type":"noop"},"kids":[]}' "an unknown field" "unknown_field unknown field 'kids'"
bad /v1/batches '{"jobs":[{"type":"noop"}],"callback_url":"ftp://x"}' "a bad callback_url" \
	"invalid_field field 'callback_url': expected an http:// or https:// URL"
expect_eq "nothing refused left a row" "$rows" "$(pg "SELECT count(*) FROM jobs")"

# ---- a flow whose child fails: the parent fails (policy fail) ---------------------
r=$(call /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop"},{"type":"fail","max_attempts":1}]}')
fp=$(head -1 <<<"$r" | jq -r .id)
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "a failed child fails the parent" "failed" "$(job_field "$fp" status)"
r=$(call /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"fail","max_attempts":1}],"on_dependency_failure":"ignore"}')
fi=$(head -1 <<<"$r" | jq -r .id)
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "unless the flow says ignore" "done" "$(job_field "$fi" status)"

# ---- a batch: counts, callback job and webhook ---------------------------------------
r=$(call /v1/batches "{\"jobs\":[{\"type\":\"noop\"},{\"type\":\"sleep\",\"payload\":{\"ms\":20}},{\"type\":\"fail\",\"max_attempts\":1},{\"type\":\"noop\"}],\"callback_url\":\"$R/hook\"}")
expect_eq "a batch is accepted" 202 "$(tail -1 <<<"$r")"
bid=$(head -1 <<<"$r" | jq -r .id)
expect_eq "its status url" "/v1/batches/$bid" "$(head -1 <<<"$r" | jq -r .status_url)"
expect_eq "before it runs: running, 4 pending" "running 4 0 0 4" \
	"$(get "/v1/batches/$bid" | jq -r '"\(.status) \(.total) \(.done) \(.failed) \(.pending)"')"
m=$(head -1 <<<"$r" | jq -r '.jobs[0]')
expect_eq "each job names its batch" "$bid" "$(get "/v1/jobs/$m" | jq -r .batch)"
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "after: finished, 3 done, 1 failed" "finished 4 3 1 0 0 done" \
	"$(get "/v1/batches/$bid" | jq -r '"\(.status) \(.total) \(.done) \(.failed) \(.cancelled) \(.pending) \(.callback.status)"')"
expect_eq "the callback job got the counts in its payload" '{"id":"'$bid'","total":4,"done":3,"failed":1,"cancelled":0}' \
	"$(wq status "$bid" | jq -c '.payload.batch | {id, total, done, failed, cancelled}')"
check "the webhook arrives" wait_until 10 sh -c "[ \"\$(curl -fs $R/last | jq -r .body.id)\" = $bid ]"
expect_eq "signed, with the counts" "1 3 1 4" \
	"$(curl -fs "$R/last" | jq -r '"\(.verified) \(.body.batch.done) \(.body.batch.failed) \(.body.batch.total)"')"
expect_eq "wakeq batch shows it" "finished 3 1" \
	"$(wq batch "$bid" | jq -r '"\(.status) \(.done) \(.failed)"')"
check "wakeq batch on a job that is no batch is refused" sh -c \
	"! REDIS_URL=$REDIS_URL $BIN/wakeq batch $m 2>$T/nb.err && grep -q \"no batch '$m'\" $T/nb.err"
expect_eq "GET of a job that is no batch is 404" 404 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$API/v1/batches/$m")"

r=$(call /v1/batches '{"jobs":[{"type":"noop"}]}')
cb=$(head -1 <<<"$r" | jq -r .id)
curl -fs -o /dev/null -XDELETE -H "Authorization: Bearer $TOKEN" "$API/v1/jobs/$cb"
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "a batch whose callback was cancelled says so; its job still ran" "cancelled 1 cancelled done" \
	"$(get "/v1/batches/$cb" | jq -r '"\(.status) \(.pending) \(.callback.status)"') $(job_field "$(head -1 <<<"$r" | jq -r '.jobs[0]')" status)"

# ---- the callback fires once a batch, with two workers racing (x100) ------------------
kill_wait "$w1_PID"
n0=$(curl -fs "$R/last" | jq .count)
for i in $(seq 1 100); do
	call /v1/batches "{\"jobs\":[{\"type\":\"sleep\",\"payload\":{\"ms\":5}},{\"type\":\"sleep\",\"payload\":{\"ms\":5}},{\"type\":\"fail\",\"max_attempts\":1}],\"callback_url\":\"$R/hook\"}" |
		head -1 | jq -r .id
done >"$T/batches"
expect_eq "100 batches" 100 "$(sort -u "$T/batches" | wc -l)"
start_worker wa IDLE_TIMEOUT=1 CONCURRENCY=2 BATCH=1 EXIT_ON_IDLE=false WEBHOOK_SECRET="$SECRET" \
	ALLOW_PRIVATE_NETWORKS=loopback
start_worker wb IDLE_TIMEOUT=1 CONCURRENCY=2 BATCH=1 EXIT_ON_IDLE=false WEBHOOK_SECRET="$SECRET" \
	ALLOW_PRIVATE_NETWORKS=loopback
curl -fs -XPOST "$wa_URL/wake?wait=0" >/dev/null
curl -fs -XPOST "$wb_URL/wake?wait=0" >/dev/null
check "every batch finishes" wait_until 60 sh -c \
	"[ \"\$(curl -fs $R/last | jq .count)\" -ge $((n0 + 100)) ]"
sleep 1.5 # a second delivery of any callback would come now
expect_eq "exactly 100 callback webhooks" $((n0 + 100)) "$(curl -fs "$R/last" | jq .count)"
bad=0 both=0
for b in $(cat "$T/batches"); do
	s=$(wq status "$b" | jq -r '"\(.status) \(.attempts) \(.payload.batch.done) \(.payload.batch.failed)"')
	[ "$s" = "done 1 2 1" ] || { bad=$((bad + 1)); echo "# batch $b: $s"; }
done
expect_eq "each callback ran once, with 2 done and 1 failed" 0 "$bad"
settled() { curl -fs "$1/metrics" | awk '/^wakeq_jobs_total/ {n += $2} END {print n + 0}'; }
na=$(settled "$wa_URL")
nb=$(settled "$wb_URL")
check "both workers settled jobs ($na and $nb)" test "$na" -gt 50 -a "$nb" -gt 50
exit 0
