#!/usr/bin/env bash
# 58_finals_log - a completion Redis recorded is never lost on its way to
# Postgres, and reconcile never runs a finished job again: an http.request
# job finishes while Postgres is down and its worker is SIGKILLed with the
# row's write still in memory, 10,100 later jobs push its hash out of the
# done cap, Postgres comes back; before any reconcile, GET /v1/jobs/{id}
# answers the finished state (the API copies the queue's finals log into
# Postgres when the row is stale and Redis has no hash; DELETE answers 409
# and the events stream ends with done, alike), and reconcile enqueues
# nothing: the job's endpoint was called once (issue 11, defect 1).
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis
start_postgres

api_token tok-58
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
hits() { grep -c " $1 " "$T/fin.hits"; }

_start_api DATABASE_URL="$DATABASE_URL" RECONCILE_MIN_AGE=0.001 QUEUES=default,fb,fc
start_hitcount fin
# post QUEUE KEY: an http.request job calling the counter with KEY
post() {
	curl -s -H "$H" -H "$CT" -d "{\"type\":\"http.request\",\"queue\":\"$1\",\"payload\":{\"url\":\"$fin_HIT?k=$2\"}}" \
		"$API/v1/jobs" | jq -r .id
}

# ID is the issue's job; IDB and IDC, alike in queues of their own (each
# queue has its own finals log), are for cancel and the events stream.
ID=$(post default once)
IDB=$(post fb b)
IDC=$(post fc c)
expect_eq "rows written as queued" "queued queued queued" \
	"$(pg "select string_agg(status, ' ') from jobs where id in ('$ID', '$IDB', '$IDC')")"

# The job runs while Postgres is down: its row cannot be written, and the
# worker is killed with the write still in memory.
stop_postgres
start_worker w1 DATABASE_URL="$DATABASE_URL" QUEUES=default,fb,fc ALLOW_PRIVATE_NETWORKS=loopback \
	IDLE_TIMEOUT=30 EXIT_ON_IDLE=false
curl -fs -XPOST "$w1_URL/wake?wait=0" >/dev/null
all_done() {
	[ "$(wq status "$ID" | jq -r .status) $(wq status --queue fb "$IDB" | jq -r .status)" = "done done" ] &&
		[ "$(wq status --queue fc "$IDC" | jq -r .status)" = done ]
}
check "the jobs ran to done in Redis" wait_until 10 all_done
kill_wait "$w1_PID" KILL
RESULT=$(wq status "$ID" | jq -cS .result)
check "it has a result ($RESULT)" test -n "$RESULT" -a "$RESULT" != null
expect_eq "its endpoint was called once" 1 "$(hits once)"
expect_eq "its completion waits in the finals log" 1 "$(rcli xlen 'wakeq:{default}:finals')"

# 10,100 later jobs: the done cap (10,000, trimmed once 1 % over) evicts
# the first job's hash.
wq enqueue noop --count 10100 >/dev/null
DATABASE_URL=$DATABASE_URL IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=1 wq drain >"$T/drain2.log" 2>&1
expect_eq "the finished job's hash was evicted" 0 "$(rcli exists "wakeq:{default}:job:$ID")"
# as the done cap of their queues would
rcli del "wakeq:{fb}:job:$IDB" "wakeq:{fc}:job:$IDC" >/dev/null

# Postgres back, nothing has copied the log yet: the row is stale. GET
# must not answer it as queued (before, it did until reconcile ran).
restart_postgres
expect_eq "the rows are stale: queued" "queued queued queued" \
	"$(pg "select string_agg(status, ' ') from jobs where id in ('$ID', '$IDB', '$IDC')")"
t0=$(date +%s%N)
n0=$(rcli xlen 'wakeq:{default}:finals')
doc=$(api_job "$ID") # copies the oldest 2,048 entries of the log: this job's among them
echo "# the GET that copied the finals log took $((($(date +%s%N) - t0) / 1000000)) ms"
expect_eq "GET answers done before any reconcile" done "$(jq -r .status <<<"$doc")"
expect_eq "with the job's result" "$RESULT" "$(jq -cS .result <<<"$doc")"
expect_eq "the GET settled the row" done "$(pg "select status from jobs where id = '$ID'")"
expect_eq "and consumed the oldest 2,048 entries of the finals log ($n0 before), no more: a GET waits for its copy" \
	$((n0 - 2048)) "$(rcli xlen 'wakeq:{default}:finals')"

# Cancel and the events stream read a stale row the same way: a finished
# job is not cancelled over its completion (before: 200 and the row
# cancelled), and its stream ends with the finished state (before: queued).
expect_eq "DELETE of the finished job, row stale: 409" 409 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -X DELETE "$API/v1/jobs/$IDB")"
expect_eq "its row is done" done "$(pg "select status from jobs where id = '$IDB'")"
ev=$(timeout 5 curl -sN -H "$H" "$API/v1/jobs/$IDC/events")
expect_eq "the events stream of a stale row ends with done" done \
	"$(sed -n 's/^data: //p' <<<"$ev" | jq -r .status)"

r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile re-enqueues nothing" 0 "$(jq -r .requeued <<<"$r")"
expect_eq "the row is final: done" done "$(pg "select status from jobs where id = '$ID'")"
expect_eq "the jobs were not queued again" "0 0 0" \
	"$(rcli exists "wakeq:{default}:job:$ID") $(rcli exists "wakeq:{fb}:job:$IDB") $(rcli exists "wakeq:{fc}:job:$IDC")"

# With Postgres up, a worker copies the log itself and empties it.
ID2=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs" | jq -r .id)
DATABASE_URL=$DATABASE_URL ALLOW_PRIVATE_NETWORKS=loopback IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=1 \
	wq drain >"$T/drain3.log" 2>&1
expect_eq "a worker records the final state" done "$(pg "select status from jobs where id = '$ID2'")"
expect_eq "after reconcile and a drain, the finished job's endpoint was called once" 1 "$(hits once)"
expect_eq "and leaves the log empty" 0 "$(rcli xlen 'wakeq:{default}:finals')"
# A burial by lease expiry: the take that buries the job appends it to the
# log, but that worker has no Postgres; reconcile, finding the job final
# in Redis and its row not, copies the log too, so no entry lingers.
ID3=$(curl -s -H "$H" -H "$CT" -d '{"type":"sleep","payload":{"ms":8000},"max_attempts":1}' "$API/v1/jobs" | jq -r .id)
start_worker k1 LEASE=1 IDLE_TIMEOUT=5
curl -fs -XPOST "$k1_URL/wake?wait=0" >/dev/null
wait_until 3 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $ID3 | jq -r .status)\" = active ]"
sleep 0.6 # its heartbeat reports the run begun: the expiry counts
kill_wait "$k1_PID" KILL
sleep 1.1 # the lease runs out
IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=1 wq drain >"$T/drain4.log" 2>&1
expect_eq "buried by lease expiry" failed "$(job_field "$ID3" status)"
# its row is told by whoever copies the log first (a take that reports the
# entry to a worker with Postgres may already have): either way, after
# reconcile nothing lingers
case "$(pg "select status from jobs where id = '$ID3'") $(rcli xlen 'wakeq:{default}:finals')" in
"active 1" | "failed 0") ok "the row is not told, or told with the log emptied" ;;
*) not_ok "the row is not told, or told with the log emptied" ;;
esac
r=$(curl -s -H "$H" -X POST "$API/v1/reconcile")
expect_eq "reconcile copies the burial and empties the log" "failed 0" \
	"$(pg "select status from jobs where id = '$ID3'") $(rcli xlen 'wakeq:{default}:finals')"
[ "$_t_failed" = 0 ] || { diag "$T/api.log"; diag "$T/w1.log"; }
exit 0
