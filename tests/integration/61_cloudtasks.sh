#!/usr/bin/env bash
# 61_cloudtasks - wakes through Cloud Tasks (WAKE_VIA=cloudtasks), against
# tests/tools/fakegcp: a fake Cloud Tasks speaking the REST protocol
# (tasks.create with httpRequest, oidcToken, scheduleTime,
# dispatchDeadline; 409 ALREADY_EXISTS on a name in use or used; tasks.get)
# that dispatches tasks to the worker's /wake holding the request and
# retries failures, and a fake metadata server for the access token.
#
# The API runs with API_TIMERS=off (as on Cloud Run): every wake is made
# before the request that caused it is answered (the API is SIGSTOPped
# right after its answer, as request-based CPU would freeze it), and no
# timer of its own serves delayed jobs. Shown: one task per wake with the
# worker's audience and the service account; concurrent wakes share a
# name; a wake while the last one is still dispatched gets a follow-up;
# delayed jobs and retries are served on time with no cron, and so are a
# cron schedule's fire times and the tokens of a rate limit (each next
# wake a task the worker schedules at that time); backlog
# fan-out makes one task per instance wanted; a long backlog is drained
# by a chain of drains cut by WAKE_MAX, none lost or run twice at the
# seams; with the HTTP transport and API_TIMERS=off the wake is handed
# off before the answer.
cd "$(dirname "$0")/../.."
. tests/lib/test.sh
start_redis

SA=wakeq-tasks@fake-project.iam.gserviceaccount.com

tasks_env() { # the Cloud Tasks settings, shared by the API and the worker
	echo WAKE_VIA=cloudtasks TASKS_ENDPOINT="$G" TASKS_LOCATION=us-central1 \
		TASKS_QUEUE=wakeq-wake TASKS_SERVICE_ACCOUNT="$SA" GCE_METADATA_HOST="${G#http://}"
}
# run_worker NAME PORT VAR=VALUE...: a worker on a chosen port (the
# tasks aim at it before it runs); sets NAME_PID
run_worker() {
	local name=$1 port=$2 pid
	shift 2
	# shellcheck disable=SC2046
	env PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" EXIT_ON_IDLE=false \
		$(tasks_env) "$@" "$BIN/wakeq-worker" >>"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	eval "${name}_PID=$pid"
	wait_until "$START_S" curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" ||
		{ echo "# worker $name did not start"; diag "$T/$name.log"; exit 1; }
}
start_api() { # start_api WORKER_PORT VAR=VALUE...
	local wport=$1
	shift
	# shellcheck disable=SC2046
	_start_api NO_AUTH=true DATABASE_URL= WAKE_URL="http://127.0.0.1:$wport/wake" \
		API_TIMERS=off $(tasks_env) "$@"
}
post() { curl -s -H "$CT" -d "$1" "$API/v1/jobs" | jq -r .id; }
ntasks() { curl -s "$G/fake/tasks" | jq "[.tasks[] | select(${1:-true})] | length"; }
fake() { curl -s "$G/fake/tasks" | jq -r "$1"; }
all_done() { [ "$(count_status default done)" = "$1" ]; }
# (wait_until runs a command again and again: the tests in these are
# evaluated each time, not once when wait_until is called)
is() { [ "$(job_field "$1" status)" = "$2" ]; }
no_worker() { [ "$(count_status default workers)" = 0 ]; }
fake_is() { [ "$(fake "$1")" = "$2" ]; }
# fresh: an empty Redis, a new fake, a free port WP for the worker
fresh() { rcli flushall >/dev/null; start_gcp; WP=$($FREEPORT); }
# done_case: the API thawed (a case may freeze it) and stopped, the worker W too
done_case() { kill -CONT "$API_PID"; stop_api; kill_wait "$W_PID"; }
epoch() { date -d "$1" +%s.%N; }
# a wake task's id: wake-HASH-BUCKET[-SLOT][-rRETRY], HASH 8 hex digits of
# the URL (all of them decimal digits now and then: anchor on the shape)
TASK_ID='^wake-[0-9a-f]{8}-(?<b>[0-9]+)(-(?<s>[0-9]+))?(-r[0-9]+)?$'

# ---- one wake: a task made before the answer, aimed at the worker -----------
start_gcp
WP=$($FREEPORT)
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5
start_api "$WP" WAKE_MAX=5
ID=$(post '{"type":"noop"}')
kill -STOP "$API_PID" # request-based CPU: nothing more happens in the API
expect_eq "the wake task exists when the job is answered" 1 "$(ntasks)"
wait_until 5 all_done 1
wait_until 5 fake_is '.tasks[0].state' done
kill -CONT "$API_PID"
expect_eq "the job ran with the API frozen after its answer" done "$(job_field "$ID" status)"
expect_eq "the task targets the worker's /wake" "http://127.0.0.1:$WP/wake" "$(fake '.tasks[0].url')"
expect_eq "its OIDC token is for the worker's origin" "http://127.0.0.1:$WP" "$(fake '.tasks[0].auth_aud')"
expect_eq "as the configured service account" "$SA" "$(fake '.tasks[0].email')"
expect_eq "held for WAKE_MAX + 60 s" 65 "$(fake '.tasks[0].deadline_s')"
check "named per target and time bucket" grep -Eq '^wake-[0-9a-f]{8}-[0-9]+$' <<<"$(fake '.tasks[0].id')"
expect_eq "dispatched once, answered 200 when the drain ended" "[200]" "$(fake '.tasks[0].statuses | tostring')"
expect_eq "every Cloud Tasks call carried a valid access token" 0 "$(fake .refused)"
expect_eq "the access token came from the metadata server once" 1 \
	"$(curl -s "$G/fake/metadata" | jq .access_asks)"
stop_api
kill_wait "$W_PID"

# ---- concurrent wakes share a task; a failed dispatch is retried ----------
rcli flushall >/dev/null
start_gcp --min-backoff 0.2 --max-backoff 0.5 --paused 1
WP=$($FREEPORT) # nothing listens there yet: dispatches fail and are retried
start_api "$WP" WAKE_MAX=5 TASKS_BUCKET=30
pids=()
for i in $(seq 1 20); do
	curl -s -o /dev/null -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs" &
	pids+=($!)
done
wait "${pids[@]}"
expect_eq "20 concurrent wakes in one bucket: one task" 1 "$(ntasks)"
check "the others found it pending (409, then tasks.get)" test "$(fake .conflicts)" -ge 1
curl -s -X POST "$G/fake/resume" >/dev/null
sleep 1
check "a failed dispatch is retried ($(fake '.tasks[0].dispatches') dispatches)" \
	test "$(fake '.tasks[0].dispatches')" -ge 2
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5
wait_until 5 all_done 20
wait_until 5 fake_is '.tasks[0].state' done
expect_eq "the retried task drained all 20 once the worker was up" 20 "$(count_status default done)"
expect_eq "the task completed on its first answer" 200 "$(fake '.tasks[0].statuses[-1]')"

# ---- a wake while the last one is still dispatched: a follow-up -------------
wait_until 5 no_worker
kill -STOP "$W_PID" # holds the next dispatch open, registers nothing
post '{"type":"noop"}' >/dev/null
wait_until 3 fake_is '[.tasks[] | select(.state == "dispatching")] | length' 1
t0=$(date +%s.%N)
post '{"type":"noop"}' >/dev/null
expect_eq "the second wake, during the first's dispatch, makes a follow-up" 3 "$(ntasks)"
# the follow-up: the task under the next name (-rN), whatever else the
# fake holds by then
late=$(fake '[.tasks[] | select(.id | test("-r[0-9]+$"))][-1].schedule // empty')
check "the follow-up is under the next name ($(fake '[.tasks[] | "\(.id) \(.schedule)"] | join(", ")'))" \
	test -n "$late"
check "the follow-up comes 2 s later (not a storm of instances; $late for $t0)" \
	awk -v a="$late" -v b="$t0" 'BEGIN { exit !(a - b > 1.5 && a - b < 2.6) }'
kill -CONT "$W_PID"
wait_until 5 all_done 22
expect_eq "both jobs ran" 22 "$(count_status default done)"
stop_api
kill_wait "$W_PID"

# ---- delayed jobs and retries on time, with no cron ------------------------
rcli flushall >/dev/null
start_gcp
WP=$($FREEPORT)
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5 BACKOFF_BASE=3 BACKOFF_CAP=3 \
	WAKE_URL="http://127.0.0.1:$WP/wake?from=worker"
start_api "$WP" WAKE_MAX=5
D1=$(post '{"type":"noop","delay_s":2}')
D2=$(post '{"type":"noop","delay_s":3.5}')
expect_eq "a scheduled job makes a scheduled task before its answer" 2 "$(ntasks)"
wait_until 8 all_done 2
for id in $D1 $D2; do
	late=$(awk -v s="$(epoch "$(job_field "$id" started_at)")" -v r="$(epoch "$(job_field "$id" run_at)")" \
		'BEGIN { printf "%.3f", s - r }')
	# Cloud Tasks schedules to the second: a dispatch up to 1 s early
	# finds nothing due, and the task's retry serves the job (2 s later at
	# worst); what matters is that no cron tick is needed.
	check "delayed job served on time, no cron (${late} s after run_at)" \
		awk -v l="$late" 'BEGIN { exit !(l >= 0 && l < 3.0) }'
done
wait_until 5 no_worker # R finds no worker
n0=$(ntasks)
R=$(post '{"type":"fail","payload":{"retryable":true},"max_attempts":2}')
wait_until 10 is "$R" failed
expect_eq "a retry waiting out its backoff ran with no cron" 2 "$(job_field "$R" attempts)"
check "the worker scheduled it: a task of its own at the retry's time" \
	test "$(ntasks)" -ge $((n0 + 2))
expect_eq "the worker aims its tasks at its WAKE_URL when set" "http://127.0.0.1:$WP/wake?from=worker" \
	"$(fake '.tasks[-1].url')"
grep -q 'next wake arranged: work comes due later' "$T/W.log"
check "the worker logged it arranged the next wake" test $? = 0
stop_api
kill_wait "$W_PID"

# ---- a cron schedule on a sleeping system: each fire time is a scheduled task --
fresh # no worker yet: the system sleeps
start_api "$WP" WAKE_MAX=5
from_worker='.url | endswith("from=worker")'
sched=$(curl -s -H "$CT" -d '{"name":"every2","cron":"*/2 * * * * *","overlap":"allow","job":{"type":"noop"}}' \
	"$API/v1/schedules")
kill -STOP "$API_PID" # no in-process timer (API_TIMERS=off): the API does nothing more
first=$(epoch "$(jq -r .next_run_at <<<"$sched")")
expect_eq "the schedule's first fire time makes a task before the answer" 1 "$(ntasks)"
check "scheduled at that fire time ($(fake '.tasks[0].schedule') for $first)" \
	awk -v s="$(fake '.tasks[0].schedule')" -v f="$first" 'BEGIN { d = s - f; exit !(d > -1 && d < 1) }'
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5 WAKE_URL="http://127.0.0.1:$WP/wake?from=worker"
wait_until 8 all_done 2
expect_eq "two fire times ran with no cron and the API frozen" 2 "$(count_status default done)"
wq jobs --queue default --state done --json | jq -r '.[].run_at' | sort >"$T/fires"
expect_eq "one job per fire time" 2 "$(sort -u "$T/fires" | wc -l)"
second=$(epoch "$(tail -1 "$T/fires")")
check "the wake for the next fire time is a task the worker scheduled at it ($second)" \
	test "$(ntasks "($from_worker) and (.schedule - $second | fabs) < 1")" -ge 1
done_case

# ---- a rate limit: held-back work runs at its token, through the worker's task --
fresh
start_api "$WP" WAKE_MAX=5
expect_eq "PUT settings: 1 job per 3 s" "1 3" "$(curl -s -XPUT -H "$CT" \
	-d '{"rate_max":1,"rate_period_s":3}' "$API/v1/queues/default/settings" |
	jq -r '"\(.rate_max) \(.rate_period_s)"')"
run_worker W "$WP" IDLE_TIMEOUT=1 WAKE_MAX=5 WAKE_URL="http://127.0.0.1:$WP/wake?from=worker"
L1=$(post '{"type":"noop"}')
L2=$(post '{"type":"noop"}')
kill -STOP "$API_PID"
wait_until 3 is "$L1" done
check "the drain ended without waiting 3 s for the token" wait_until 2 no_worker
expect_eq "the second is held back by the rate" queued "$(job_field "$L2" status)"
check "then ran at its token, with no cron and the API frozen" wait_until 5 is "$L2" done
gap=$(awk -v a="$(epoch "$(job_field "$L1" started_at)")" -v b="$(epoch "$(job_field "$L2" started_at)")" \
	'BEGIN { printf "%.3f", b - a }')
check "3 s after the first, as the rate says (${gap} s)" awk -v g="$gap" 'BEGIN { exit !(g >= 2.99 && g < 4.5) }'
l2=$(epoch "$(job_field "$L2" started_at)")
check "woken by a task the worker scheduled for the token ($l2)" \
	test "$(ntasks "($from_worker) and (.schedule - $l2 | fabs) < 1")" -ge 1
done_case

# ---- a paused queue's work arranges no wake (its resume wakes) ---------------
rcli flushall >/dev/null
start_gcp
WP=$($FREEPORT)
run_worker P "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5
REDIS_URL=$REDIS_URL "$BIN/wakeq" pause default >/dev/null
for i in 1 2 3; do REDIS_URL=$REDIS_URL "$BIN/wakeq" enqueue noop >/dev/null 2>&1; done
curl -fs -o /dev/null -XPOST "http://127.0.0.1:$WP/wake"
expect_eq "the paused queue's jobs wait" 3 "$(count_status default queued)"
expect_eq "a drain ending on a paused queue arranges no next wake" 0 "$(ntasks)"
expect_eq "... nor says it did" 0 "$(grep -c 'next wake arranged' "$T/P.log")"
kill_wait "$P_PID"

# ---- backlog fan-out: a task per instance wanted ----------------------------
rcli flushall >/dev/null
start_gcp --paused 1
WP=$($FREEPORT) # no worker yet: the tasks wait
start_api "$WP" WAKE_MAX=5 WAKE_FANOUT_MAX=3 WORKER_CONCURRENCY=1 WAKE_BACKLOG=2
# one after another: the first post's fan-out check sees a backlog of 1
# (at once they could all be queued before it looks); on a loaded machine
# the 10 may take over a second, and then a fan-out check is due among them
t0=$(date +%s%N)
for i in $(seq 1 10); do post '{"type":"noop"}' >/dev/null; done
took=$((($(date +%s%N) - t0) / 1000000))
fanned=$(ntasks ".id | test(\"$TASK_ID\") and (capture(\"$TASK_ID\").s != null)")
if [ "$took" -lt 900 ]; then
	expect_eq "a backlog of 10 with no worker: no fan-out in the first second (posted in $took ms)" 0 "$fanned"
else # the second passed while posting: a fan-out is then due, not early
	check "a backlog of 10 posted in $took ms (over a second): fan-out tasks only for slots 1 and 2" \
		test "$fanned" -le 2
fi
sleep 1.1 # fan-out checks run at most once a second
post '{"type":"noop"}' >/dev/null
# (a base wake per time bucket: the second may have its own)
expect_eq "11 pending jobs, 2 per instance, at most 3: tasks for slots 0 1 2" \
	"0 1 2" "$(fake "[.tasks[].id | capture(\"$TASK_ID\").s // \"0\"] | unique | join(\" \")")"
curl -s -X POST "$G/fake/resume" >/dev/null
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=5
wait_until 5 all_done 11
expect_eq "the fan-out tasks drained the backlog" 11 "$(count_status default done)"
stop_api
kill_wait "$W_PID"

# ---- a long backlog through drains cut by WAKE_MAX: none lost or run twice ---
rcli flushall >/dev/null
start_gcp
cat >"$T/handlers.json" <<EOF
{"handlers": {"note": {"command": ["/bin/sh", "-c", "echo \$WAKEQ_JOB_ID >>$T/runs; sleep 0.1"]}}}
EOF
WP=$($FREEPORT)
run_worker W "$WP" IDLE_TIMEOUT=0.5 WAKE_MAX=2 CONCURRENCY=4 HANDLERS_FILE="$T/handlers.json"
start_api "$WP" WAKE_MAX=2 HANDLERS_FILE="$T/handlers.json"
N=300
seq 1 $N | xargs -P 8 -I{} curl -s -o /dev/null -H "$CT" -d '{"type":"note"}' "$API/v1/jobs"
wait_until 40 all_done $N
expect_eq "all $N jobs done" $N "$(count_status default done)"
cuts=$(grep -c 'drain ended reason=wake_max' "$T/W.log")
check "drains cut by WAKE_MAX ($cuts) chained to the next" test "$cuts" -ge 2
expect_eq "each job ran exactly once" "$N $N" "$(wc -l <"$T/runs") $(sort -u "$T/runs" | wc -l)"
expect_eq "none took a second attempt" 0 "$(rcli eval "local n=0 for _,k in ipairs(redis.call('keys','wakeq:{default}:job:*')) do if redis.call('hget',k,'attempts')~='1' then n=n+1 end end return n" 0)"
check "every dispatch was answered 200 (no retries needed)" \
	test "$(fake '[.tasks[].statuses[] | select(. != 200)] | length')" = 0
stop_api
kill_wait "$W_PID"

# ---- HTTP transport with API_TIMERS=off: handed off before the answer -----------
rcli flushall >/dev/null
start_fake STUB "$BIN/tests/tools/wakestub" --hold 3
_start_api NO_AUTH=true DATABASE_URL= WAKE_URL="$STUB/wake" API_TIMERS=off
post '{"type":"noop"}' >/dev/null
kill -STOP "$API_PID"
sleep 0.3
expect_eq "the HTTP wake went out before the answer" 1 "$(curl -s "$STUB/count" | jq .wakes)"
kill -CONT "$API_PID"
post '{"type":"noop","delay_s":1}' >/dev/null
sleep 4.5
expect_eq "no in-process timer wakes for a scheduled job" 1 "$(curl -s "$STUB/count" | jq .wakes)"
kill_wait "$API_PID"

# ---- settings -------------------------------------------------------------------
out=$(env REDIS_URL=$REDIS_URL NO_AUTH=true WAKE_URL=http://127.0.0.1:9/wake WAKE_VIA=cloudtasks \
	TASKS_LOCATION=us-central1 TASKS_QUEUE=q TASKS_SERVICE_ACCOUNT=$SA WAKE_MAX=3540 \
	PORT=0 "$API_BIN" 2>&1)
check "WAKE_MAX beyond what Cloud Tasks can hold is refused at start-up" \
	contains "$out" "not 3600 s (WAKE_MAX + 60 s)"
out=$(env REDIS_URL=$REDIS_URL NO_AUTH=true WAKE_URL=http://127.0.0.1:9/wake WAKE_VIA=cloudtasks \
	TASKS_LOCATION=us-central1 TASKS_QUEUE=q PORT=0 "$API_BIN" 2>&1)
check "a missing TASKS_SERVICE_ACCOUNT is named" contains "$out" "bad TASKS_SERVICE_ACCOUNT ''"
out=$(env REDIS_URL=$REDIS_URL WAKE_VIA=cloudtasks TASKS_LOCATION=us-central1 TASKS_QUEUE='a b' \
	TASKS_SERVICE_ACCOUNT=$SA PORT=0 "$BIN/wakeq-worker" 2>&1)
check "the worker names a bad TASKS_QUEUE" contains "$out" "bad TASKS_QUEUE 'a b'"

exit $_t_failed
