#!/usr/bin/env bash
# 53_api_redis_freeze - Redis frozen (SIGSTOP) for longer than the API's
# Redis command timeout. The enqueue script the API sent sits in Redis's
# input and runs when Redis thaws, after the API gave up on it; it carries
# a deadline and refuses then. So: an answer 503 or 504 leaves nothing in
# Redis (the job never runs); with Postgres, a job whose enqueue went
# unanswered is accepted (202), its row stays, and it reaches Redis once,
# through reconcile. (Before the deadline the API answered 503 and the
# script queued the job on thaw: a refused job ran.)
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis

TOKEN=tok-53f
H="Authorization: Bearer $TOKEN"
CT="Content-Type: application/json"
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
on_exit "kill -CONT $REDIS_PID 2>/dev/null"

# freeze N KEY...: freezes Redis, posts one job per KEY, thaws it once the
# last answer is older than the deadline; the answers go to $T/answers
freeze() {
	local k
	: >"$T/answers"
	kill -STOP "$REDIS_PID"
	for k in "$@"; do post_keyed "$k" >>"$T/answers"; done
	sleep 0.7 # past the deadline of the last script sent (timeout / 2)
	kill -CONT "$REDIS_PID"
	wait_redis
	sleep 0.3 # what the frozen server had unread has run by now
}

# ---- without Postgres: no answer is a promise the job will not run -------
_start_api REDIS_TIMEOUT=1
expect_eq "POST works before the freeze" "202" "$(post_keyed warm | cut -d' ' -f1)"
before=$(rcli --scan | sort)
freeze nopg-1 nopg-2
diag "$T/answers"
read -r st ms code _ < <(head -1 "$T/answers")
expect_eq "unanswered enqueue: 504 unconfirmed, not 503" "504 unconfirmed" "$st $code"
check "answered within 2 s of a 1 s timeout ($ms ms)" test "$ms" -lt 2000
check "every answer during the freeze is a 503 or a 504" \
	test "$(awk '$1 != 503 && $1 != 504' "$T/answers" | wc -l)" = 0
expect_eq "each script found on thaw refused to run (DEADLINE)" \
	"$(awk '$1 == 504' "$T/answers" | wc -l)" "$(deadline_refusals)"
expect_eq "nothing reached redis for the jobs answered 503/504" "$before" "$(rcli --scan | sort)"
expect_eq "their keys are free: reusing one makes a new job" 202 "$(post_keyed nopg-1 | cut -d' ' -f1)"

# A burst: POST 1, then 2 and 3 while 1 waits out its timeout, with several
# connections idle in the pool. The ones gathered behind it are answered at
# once when it fails (the pool asks a silent Redis again only after half a
# second), not after a timeout of their own on another idle connection.
pids=()
for i in 1 2 3 4 5 6; do curl -s -o /dev/null "$API/readyz" & pids+=($!); done
wait "${pids[@]}"
before=$(rcli --scan | sort)
kill -STOP "$REDIS_PID"
pids=()
for i in 1 2 3; do post_keyed "burst-$i" >"$T/burst$i" & pids+=($!); sleep 0.2; done
wait "${pids[@]}"
sleep 0.5
kill -CONT "$REDIS_PID"
wait_redis
sleep 0.3
for i in 1 2 3; do
	read -r st ms code _ <"$T/burst$i"
	check "burst POST $i: 503 or 504 within REDIS_TIMEOUT + 0.5 s ($st $code, $ms ms)" \
		test "$ms" -lt 1500 -a "$st" -ge 503 -a "$st" -le 504
done
expect_eq "burst: nothing reached redis" "$before" "$(rcli --scan | sort)"
stop_api

# ---- with Postgres: an unanswered enqueue is accepted, and runs once ------
start_postgres
_start_api REDIS_TIMEOUT=1 DATABASE_URL="$DATABASE_URL" RECONCILE_MIN_AGE=0.001
expect_eq "POST works before the freeze" "202" "$(post_keyed warm-pg | cut -d' ' -f1)"
n0=$(deadline_refusals)
freeze pg-1 pg-2
diag "$T/answers"
read -r st ms code id < <(head -1 "$T/answers")
expect_eq "unanswered enqueue with a row: 202, the row kept" "202 queued" \
	"$st $(pg "select status from jobs where id = '$id'")"
check "answered within 2 s of a 1 s timeout ($ms ms)" test "$ms" -lt 2000
check "every answer is a 202 or a 503" test "$(awk '$1 != 202 && $1 != 503' "$T/answers" | wc -l)" = 0
acc=$(awk '$1 == 202 {print $4}' "$T/answers")
nacc=$(wc -w <<<"$acc")
expect_eq "each script found on thaw refused to run (DEADLINE)" "$((n0 + nacc))" "$(deadline_refusals)"
expect_eq "the jobs answered 503 left no row" "$nacc" \
	"$(pg "select count(*) from jobs where idempotency_key in ('pg-1','pg-2')")"
inredis() { local id n=0; for id in $acc; do n=$((n + $(rcli exists "wakeq:{default}:job:$id"))); done; echo $n; }
expect_eq "the accepted jobs are not in redis before reconcile" 0 "$(inredis)"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile enqueues the accepted jobs" "$nacc" "$(jq -r .requeued <<<"$r")"
expect_eq "each is in redis once, under its id" "$nacc $nacc" \
	"$(inredis) $(for i in $acc; do rcli zscore 'wakeq:{default}:pending' "$i"; done | wc -l)"
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "a second reconcile finds nothing to do" 0 "$(jq -r .requeued <<<"$r")"

# A flow whose enqueue went unanswered is accepted the same way: its rows
# stay (a retry must not make it twice), and reconcile enqueues the
# children before the parent, which waits for them (not refused).
kill -STOP "$REDIS_PID"
r=$(curl -s -w ' %{http_code}' --max-time 10 -H "$H" -H "$CT" \
	-d '{"parent":{"type":"noop"},"children":[{"type":"noop"},{"type":"noop"}]}' "$API/v1/flows")
sleep 0.7
kill -CONT "$REDIS_PID"
wait_redis
sleep 0.3
diag <<<"$r"
fid=$(jq -r '.id // "-"' <<<"${r% *}" 2>/dev/null)
kids=$(jq -r '.children[]?.id' <<<"${r% *}" 2>/dev/null)
expect_eq "unanswered flow enqueue: 202, its 3 rows kept" "202 3" \
	"${r##* } $(pg "select count(*) from jobs where id in ('$fid'$(printf ",'%s'" $kids))")"
expect_eq "the flow is not in redis before reconcile" 0 "$(rcli exists "wakeq:{default}:job:$fid")"
curl -s -H "$H" -X POST "$API/v1/reconcile" >/dev/null
expect_eq "reconcile enqueues the parent, waiting for its children" "waiting" \
	"$(rcli hget "wakeq:{default}:job:$fid" status)"
expect_eq "and each child, queued" "queued queued" \
	"$(for k in $kids; do rcli hget "wakeq:{default}:job:$k" status; done | xargs)"
stop_api
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
