#!/usr/bin/env bash
# 65_cluster_doubt - 53_api_redis_freeze on a Redis Cluster: the master
# serving the queue's slot is frozen (SIGSTOP) for longer than the API's
# Redis command timeout while a job is POSTed. Its enqueue script left
# whole for that master and no answer came, so the API says so as on one
# Redis: 504 unconfirmed without Postgres, 202 with the row kept with it,
# never 503 (a refusal the thaw could break). The script, run when the
# master thaws, refuses (DEADLINE): the job is absent, until reconcile
# queues it once. The freeze stays shorter than the cluster's node timeout
# (1 s in tests), so no node is failed over meanwhile. The queue lives on
# a master other than the seed of the URL: its deadline must be on that
# master's clock (measured there), not the seed's.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
source tests/lib/runmodel.sh # monitor_start, client_cmds

start_redis_cluster 3 0 || { not_ok "the cluster starts"; exit 1; }
# a queue on a master other than the URL's seed, the node the API asks
# first (its clock once stood for every node's)
for i in $(seq 0 50); do
	Q=q$i OWNER=$(cluster_owner "wakeq:{q$i}:x")
	[ "$OWNER" != "$REDIS_PORT" ] && break
done
OPID=${CLUSTER_PIDS[$OWNER]}
on_exit "kill -CONT $OPID 2>/dev/null"
ocli() { redis-cli -p "$OWNER" "$@"; }

api_token tok-65
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }

# freeze KEY: freezes the owner, posts one job with KEY, thaws the owner
# once past the script's deadline (REDIS_TIMEOUT / 2 after it was sent);
# the answer goes to $T/answer
freeze() {
	kill -STOP "$OPID"
	post_keyed "$1" >"$T/answer"
	sleep 0.25
	kill -CONT "$OPID"
	REDIS_PORT=$OWNER wait_redis
	sleep 0.3 # what the frozen master had unread has run by now
	diag "$T/answer"
}

# ---- without Postgres: 504 unconfirmed, and the job never runs ------------
_start_api REDIS_TIMEOUT=0.4 LOG_LEVEL=warn QUEUES="$Q"
REDIS_PORT=$OWNER monitor_start "$T/monitor"
expect_eq "POST works before the freeze" "202" "$(post_keyed warm | cut -d' ' -f1)"
kill_wait "$MONITOR_PID"
check "the deadline is on the clock of the queue's master: the API asked its TIME" \
	test "$(client_cmds "$T/monitor" | grep -c '"TIME"')" -ge 1
before=$(ocli --scan | sort)
freeze nopg-1
read -r st ms code _ <"$T/answer"
expect_eq "unanswered enqueue on a cluster: 504 unconfirmed, not 503" "504 unconfirmed" "$st $code"
check "answered within 1.5 s of a 0.4 s timeout ($ms ms)" test "$ms" -lt 1500
expect_eq "the script found on thaw refused to run (DEADLINE)" 1 "$(deadline_refusals "$OWNER")"
expect_eq "nothing reached the master for the job answered 504" "$before" "$(ocli --scan | sort)"
wait_until 10 _cluster_ok
expect_eq "its key is free: reusing it makes a new job" 202 "$(post_keyed nopg-1 | cut -d' ' -f1)"
stop_api

# ---- with Postgres: 202, the row kept, and the job queued once -------------
start_postgres
_start_api REDIS_TIMEOUT=0.4 LOG_LEVEL=warn QUEUES="$Q" DATABASE_URL="$DATABASE_URL" \
	RECONCILE_MIN_AGE=0.001
expect_eq "POST works before the freeze" "202" "$(post_keyed warm-pg | cut -d' ' -f1)"
n0=$(deadline_refusals "$OWNER")
freeze pg-1
read -r st ms code id <"$T/answer"
expect_eq "unanswered enqueue with a row: 202, the row kept" "202 queued" \
	"$st $(pg "select status from jobs where id = '$id'")"
expect_eq "the script found on thaw refused to run (DEADLINE)" "$((n0 + 1))" "$(deadline_refusals "$OWNER")"
expect_eq "the job is not in redis before reconcile" 0 "$(ocli exists "wakeq:{$Q}:job:$id")"
wait_until 10 _cluster_ok
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile enqueues it" 1 "$(jq -r .requeued <<<"$r")"
expect_eq "it is in redis once, under its id" "1 1" \
	"$(ocli exists "wakeq:{$Q}:job:$id") $(ocli zscore "wakeq:{$Q}:pending" "$id" | grep -c .)"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "a second reconcile finds nothing to do" 0 "$(jq -r .requeued <<<"$r")"
stop_api
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
