#!/usr/bin/env bash
# 63_cluster - wakeq on a real Redis Cluster (3 masters, 3 replicas, on
# loopback ports) through redis+cluster://: jobs enqueued by the API and
# drained by one real worker over two queues that live on different
# masters; the idle worker woken on either queue by its marker (no
# CROSSSLOT); server-sent events published on one node reach the API
# subscribed on another; a queue's slot migrated to another master in
# the middle of a drain, and a master failed over to its replica in the
# middle of another (CLUSTER FAILOVER): no job lost, duplicates counted,
# nothing dead; then a master killed (kill -9) mid-drain: the promoted
# replica serves on, and only what asynchronous replication lost is
# missing (reported).
cd "$(dirname "$0")/../.."
source tests/lib/test.sh

start_redis_cluster 3 1 || { not_ok "the cluster starts"; exit 1; }
ok "a 3-master cluster with a replica each is up"
C0=${CLUSTER_PORTS[0]}
cli() { redis-cli -p "$C0" "$@"; }
node_id() { redis-cli -p "$1" cluster myid; }
masters() { cli cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "[:@]"); print a[2]}'; }

# two queues on different masters
QA='' QB=''
for i in $(seq 0 50); do
	q=q$i
	o=$(cluster_owner "wakeq:{$q}:x")
	if [ -z "$QA" ]; then QA=$q OA=$o
	elif [ "$o" != "$OA" ]; then QB=$q OB=$o; break
	fi
done
expect_eq "two queues on two masters" 1 "$([ -n "$QB" ] && [ "$OA" != "$OB" ] && echo 1)"

TOKEN=tok-63
H="Authorization: Bearer $TOKEN"
CT="Content-Type: application/json"
WPORT=$($FREEPORT)
_start_api QUEUES="$QA,$QB" WAKE_URL="http://127.0.0.1:$WPORT/wake" LOG_LEVEL=warn
env PORT=$WPORT HOST=127.0.0.1 REDIS_URL="$REDIS_URL" QUEUES="$QA,$QB" CONCURRENCY=4 \
	IDLE_TIMEOUT=100 EXIT_ON_IDLE=false LEASE=3 LOG_LEVEL=info \
	"$BIN/wakeq-worker" >"$T/worker.log" 2>&1 &
WPID=$!
on_exit "kill_wait $WPID KILL"
wait_until "$START_S" curl -sf -o /dev/null "http://127.0.0.1:$WPORT/healthz" ||
	{ not_ok "the worker starts"; diag "$T/worker.log"; exit 1; }

# post N Q TYPE PAYLOAD: N jobs through the API (each 202)
post() {
	local n=$1 q=$2 ty=$3 pl=$4
	curl -s -H "$H" -H "$CT" -o /dev/null -w '%{http_code}\n' \
		-d "{\"type\":\"$ty\",\"queue\":\"$q\",\"payload\":$pl}" \
		"$API/v1/jobs?n=[1-$n]" 2>/dev/null | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}'
}
count() { count_status "$1" "$2"; }
# accepted FILE: how many 202s post wrote to FILE
accepted() {
	local n
	n=$(grep -o '202:[0-9]*' "$1" | cut -d: -f2)
	echo "${n:-0}"
}
# drained Q WANT WHAT: waits for WANT jobs of Q done; none lost, dead, queued
drained() {
	local q=$1 want=$2
	wait_until 40 bash -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue $q | jq '.\"$q\".done')\" -ge $want ]"
	expect_eq "every accepted job of $3 done: none lost" "$want" "$(count "$q" done)"
	expect_eq "none dead" 0 "$(count "$q" failed)"
	expect_eq "none left queued" 0 "$(count "$q" queued)"
}
# replica_of PORT: the port of a replica of the master on PORT
replica_of() {
	local id
	id=$(node_id "$1")
	redis-cli -p "$1" cluster nodes | awk -v m="$id" '$4 == m {split($2, a, "[:@]"); print a[2]}' | head -1
}

# ---- enqueue by the API, drain by the worker, two nodes ---------------
expect_eq "20 jobs on $QA accepted" "202:20 " "$(post 20 "$QA" noop '{}')"
expect_eq "20 jobs on $QB accepted" "202:20 " "$(post 20 "$QB" noop '{}')"
wait_until 20 bash -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json | jq '[.[].done] | add')\" = 40 ]"
expect_eq "the worker drained $QA on its node" 20 "$(count "$QA" done)"
expect_eq "the worker drained $QB on the other node" 20 "$(count "$QB" done)"
check "no CROSSSLOT, no failed wait" bash -c "! grep -qi 'crossslot\|waiting for work failed' '$T/worker.log'"

# ---- the idle worker wakes on either queue's marker --------------------
# (the drain is awake and blocked: IDLE_TIMEOUT is long)
for q in "$QB" "$QA"; do
	sleep 0.3
	r=$(curl -s -H "$H" -H "$CT" -d "{\"type\":\"noop\",\"queue\":\"$q\"}" "$API/v1/jobs")
	id=$(jq -r .id <<<"$r")
	t0=$(date +%s%N)
	wait_until 5 bash -c "[ \"\$(curl -s -H '$H' $API/v1/jobs/$id | jq -r .status)\" = done ]"
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "a job on $q ran at once from the idle wait (${ms} ms)" test "$ms" -lt 1500
done

# ---- events: published on the queue's node, read by the API -----------
r=$(curl -s -H "$H" -H "$CT" -d "{\"type\":\"sleep\",\"queue\":\"$QB\",\"payload\":{\"ms\":300}}" "$API/v1/jobs")
id=$(jq -r .id <<<"$r")
curl -sN -m 10 -H "$H" "$API/v1/jobs/$id/events" >"$T/sse.txt" &
SSE=$!
wait_until 10 grep -q '^event: end' "$T/sse.txt"
kill "$SSE" 2>/dev/null
check "server-sent events over the cluster end with done" \
	bash -c "grep -A1 '^event: end' '$T/sse.txt' | grep -q '\"status\":\"done\"'"

# ---- a slot migration in the middle of a drain -------------------------
SLOT=$(cli cluster keyslot "wakeq:{$QA}:x")
SRC=$(cluster_owner "wakeq:{$QA}:x")
DST=$(masters | grep -vx "$SRC" | head -1)
SRC_ID=$(node_id "$SRC") DST_ID=$(node_id "$DST")
d0=$(count "$QA" done)
expect_eq "300 jobs on $QA accepted" "202:300 " "$(post 300 "$QA" sleep '{"ms":30}')"
at_start=$(count "$QA" done)
redis-cli -p "$DST" cluster setslot "$SLOT" importing "$SRC_ID" >/dev/null
redis-cli -p "$SRC" cluster setslot "$SLOT" migrating "$DST_ID" >/dev/null
# while it migrates: more jobs come in (their scripts wait it out)
post 50 "$QA" noop '{}' >"$T/during" &
POSTER=$!
moved=0
while :; do
	keys=$(redis-cli -p "$SRC" cluster getkeysinslot "$SLOT" 10)
	[ -n "$keys" ] || break
	# shellcheck disable=SC2086
	redis-cli -p "$SRC" migrate 127.0.0.1 "$DST" "" 0 5000 keys $keys >/dev/null
	moved=$((moved + $(wc -w <<<"$keys")))
	sleep 0.01
done
for p in $(masters); do redis-cli -p "$p" cluster setslot "$SLOT" node "$DST_ID" >/dev/null; done
wait "$POSTER"
check "slot $SLOT of $QA moved from $SRC to $DST ($moved keys) mid-drain ($((at_start - d0)) of 300 done at its start)" \
	test "$at_start" -lt $((d0 + 300))
# a script waits out a migration within the command timeout (the API's
# is 5 s), else answers 503: on a loaded machine some may
n202=$(accepted "$T/during")
check "jobs posted during the migration: $(cat "$T/during")" test "$n202" -gt 0
expect_eq "$QA is now served by $DST" "$DST" "$(cluster_owner "wakeq:{$QA}:x")"
drained "$QA" $((d0 + 300 + n202)) "the migrated queue"

# ---- a failover of a master in the middle of a drain -------------------
R=$(replica_of "$(cluster_owner "wakeq:{$QB}:x")")
d0=$(count "$QB" done)
expect_eq "300 jobs on $QB accepted" "202:300 " "$(post 300 "$QB" sleep '{"ms":30}')"
at_start=$(count "$QB" done)
redis-cli -p "$R" cluster failover >/dev/null
post 50 "$QB" noop '{}' >"$T/during2" &
POSTER=$!
wait_until 15 bash -c "redis-cli -p $R role | head -1 | grep -q master"
wait "$POSTER"
expect_eq "the replica $R is $QB's master now" master "$(redis-cli -p "$R" role | head -1)"
check "the failover came mid-drain ($((at_start - d0)) of 300 done at its start)" \
	test "$at_start" -lt $((d0 + 300))
n202=$(accepted "$T/during2")
ok "$n202 of 50 jobs posted during the failover accepted ($(cat "$T/during2"))"
drained "$QB" $((d0 + 300 + n202)) "the failed-over queue"

# ---- a master killed (kill -9) in the middle of a drain ----------------
# Replication is asynchronous: what the master acknowledged in its last
# moments may not have reached the replica. Asserted: the worker and the
# API carry on with the promoted replica, everything the new master holds
# is drained, and every job accepted after the promotion is done.
M=$(cluster_owner "wakeq:{$QA}:x")
R=$(replica_of "$M")
d0=$(count "$QA" done)
expect_eq "200 jobs on $QA accepted" "202:200 " "$(post 200 "$QA" sleep '{"ms":30}')"
kill_wait "${CLUSTER_PIDS[$M]}" KILL
C0=$R # the harness's first node may have been the one killed
wait_until 20 bash -c "redis-cli -p $R role 2>/dev/null | head -1 | grep -q master"
expect_eq "the replica $R took over from the killed master $M" master "$(redis-cli -p "$R" role | head -1)"
# and every live node says so (the news travels the bus in some ms)
SLOT=$(redis-cli -p "$R" cluster keyslot "wakeq:{$QA}:x")
agreed() {
	local p
	for p in "${CLUSTER_PORTS[@]}"; do
		[ "$p" = "$M" ] && continue
		redis-cli -p "$p" --json cluster slots 2>/dev/null | python3 -c '
import json, sys
s, r = int(sys.argv[1]), int(sys.argv[2])
sys.exit(0 if any(e[0] <= s <= e[1] and e[2][1] == r for e in json.load(sys.stdin)) else 1)' "$SLOT" "$R" || return 1
	done
}
wait_until 10 agreed
expect_eq "jobs posted after the promotion accepted" "202:20 " "$(post 20 "$QA" noop '{}')"
wait_until 40 bash -c "s=\$(REDIS_URL=redis+cluster://127.0.0.1:$R $BIN/wakeq stats --json --queue $QA) &&
	[ \"\$(jq '.\"$QA\" | .queued + .active + .retrying' <<<\"\$s\")\" = 0 ]"
st=$(REDIS_URL=redis+cluster://127.0.0.1:$R "$BIN/wakeq" stats --json --queue "$QA")
expect_eq "nothing of $QA left queued, active or retrying" 0 "$(jq ".\"$QA\" | .queued + .active + .retrying" <<<"$st")"
expect_eq "none dead" 0 "$(jq ".\"$QA\".failed" <<<"$st")"
n=$(jq ".\"$QA\".done" <<<"$st")
ok "after kill -9: $((n - d0)) of 220 accepted jobs done on the new master, $((d0 + 220 - n)) lost to asynchronous replication"

runs=$(grep -c 'INFO job done' "$T/worker.log")
uniq=$(grep 'INFO job done' "$T/worker.log" | grep -o 'job_id=[^ ]*' | sort -u | wc -l)
ok "$runs runs of $uniq jobs: $((runs - uniq)) ran twice (at-least-once)"
check "the worker is still serving" curl -sf -o /dev/null "http://127.0.0.1:$WPORT/healthz"
[ "${_t_failed:-0}" = 0 ] || { diag "$T/worker.log" | tail -40; diag "$T/api.log" | tail -20; }
exit 0
