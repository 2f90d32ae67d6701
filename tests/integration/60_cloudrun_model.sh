#!/usr/bin/env bash
# 60_cloudrun_model - wakeq under a model of Cloud Run (tests/tools/runmodel.c,
# docs/CLOUDRUN.md): request-based CPU (an instance with no open request is
# frozen), idle instances shut down, containerConcurrency, max instances,
# the request timeout and the body cap, and a billing meter.
#
#   1. the model itself, with the worker behind it: cold start, freeze and
#      thaw, 504 at the timeout, 429 past max instances, 413, idle shutdown;
#      a worker thawed after a long freeze serves the request that thawed it
#   2. idle cron ticks: an empty wake answers at once and sends at most 3
#      Redis commands (a take that registers, a retire; TIME on a fresh
#      connection); billed seconds, Redis commands and wall time per tick
#      (the figures of CLOUDRUN.md); a draining worker stays registered
#   3. the API as deployed (request-based CPU, wakes held by Cloud Tasks,
#      fakegcp) in front of the worker: a job and a delayed job posted to
#      a sleeping system, the API instance shut down while its job runs;
#      with WAKE_VIA=http, the wake handed off before the answer
#   4. the API with CPU outside requests (instance-based billing): jobs at
#      random times, a burst, delayed jobs, retries, a worker SIGKILLed
#      mid-drain
#   5. the same mix as deployed (section 3's settings): every job ends done
#      and runs to its end once; worker instances SIGKILLed mid-drain with
#      no traffic after it: their jobs end done without a cron tick, by
#      the wake arranged for their leases' expiry (the recovery is timed)
#
# Job states are read from Redis (redis-cli, the CLI), never through the
# API: a request to the API would give it CPU and hide what it does
# without.
cd "$(dirname "$0")/../.."
. tests/lib/test.sh
source tests/lib/runmodel.sh
start_redis
start_postgres

api_token tok-60
Q='wakeq:{default}'
IDLE=1.5 # the worker's IDLE_TIMEOUT
WORKER_ENV=(HOST=127.0.0.1 REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL
	IDLE_TIMEOUT=$IDLE LEASE=2 WAKE_MAX=20 SHUTDOWN_GRACE=1 CONCURRENCY=4
	BACKOFF_BASE=0.2 BACKOFF_CAP=0.4)
t_start=$SECONDS

# statuses ID...: "N done, N queued"..., one redis-cli for all
statuses() {
	local id
	for id in "$@"; do echo "HGET $Q:job:$id status"; done | rcli | sort | uniq -c |
		awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}'
}
# all_in STATE ID...: every job is in STATE
all_in() {
	local want=$1
	shift
	[ "$(statuses "$@")" = "$# $want" ]
}
post() { # post JSON: the job id (through the API's proxy)
	curl -s -H "$H" -H "$CT" -d "$1" "$api_URL/v1/jobs" | jq -r .id
}
post_burst() { # post_burst N JSON: N posts at once; their job ids, a line each
	local i pids=()
	for i in $(seq 1 "$1"); do
		post "$2" >"$T/burst.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in $(seq 1 "$1"); do cat "$T/burst.$i"; done
}
# attempts ID...: "N ATTEMPTS" per distinct attempt count
attempts() {
	local id
	for id in "$@"; do rcli hget "$Q:job:$id" attempts; done | sort | uniq -c | awk '{print $1, $2}'
}
# lag ID: seconds from the job's run_at to its start (whole seconds)
lag() {
	wq status "$1" | jq -r '[.started_at, .run_at] | map(sub("\\.[0-9]+Z$"; "Z") | fromdate) | .[0] - .[1]'
}
tick() { # tick: a cron tick, POST /wake on the worker's proxy; prints the summary
	curl -s -XPOST "$worker_URL/wake"
}

# ---- 1. the model itself ------------------------------------------------------
wq enqueue sleep --queue mcheck --payload '{"ms":6000}' >/dev/null
start_service check "$BIN/wakeq-worker" --concurrency 1 --max 1 --timeout 3 --pending 0.5 \
	--idle 1.5 -- "${WORKER_ENV[@]}" QUEUES=mcheck SHUTDOWN_GRACE=1
expect_eq "no instance before the first request" 0 "$(mstat check .instances_alive)"
curl -s -o "$T/held.body" -w '%{http_code} %{time_total}' -XPOST "$check_URL/wake" >"$T/held" &
held=$!
wait_until 5 mstat_is check .routed 1
r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -XPOST "$check_URL/wake")
expect_eq "max instances reached, concurrency 1: 429 after the pending wait (${r#* } s)" 429 "${r% *}"
pid=$(inst_pid check)
check "the first request started an instance (cold start $(mstat check .cold_start.last_s) s)" \
	test -n "$pid" -a "$(mstat check .cold_start.count)" = 1
check "an instance holding a request has CPU" test "$(proc_state "$pid")" != T
wait "$held"
r=$(cat "$T/held")
expect_eq "a request past the timeout is cut: 504" 504 "${r% *}"
check "cut at 3 s (${r#* } s, cold start included)" awk -v t="${r#* }" 'BEGIN { exit !(t >= 2.9 && t < 4.5) }'
wait_until 2 state_is "$pid" T
expect_eq "with no open request the instance is frozen (SIGSTOP)" T "$(proc_state "$pid")"
expect_eq "the meter counts it: 1 timeout, 1 rejection" "1 1" "$(mstat check '"\(.timeouts_504) \(.rejected_429)"')"
wait_until 5 state_is "$pid" gone
expect_eq "idle for 1.5 s: shut down (SIGTERM, thawed for it)" "1 0" "$(mstat check '"\(.reaps) \(.instances_alive)"')"
check "the instance exited 0 on SIGTERM" grep -q "instance 1 (pid $pid) exited 0" "$T/model-check.log"
head -c $((32 * 1024 * 1024 + 1)) /dev/zero >"$T/big"
expect_eq "a body over 32 MiB: 413" 413 \
	"$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T/big" "$check_URL/wake")"
expect_eq "a chunked body over 32 MiB: 413" 413 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
		--data-binary @"$T/big" "$check_URL/wake")"
rm -f "$T/big"
stop_service check
# A worker thawed after a freeze longer than IDLE_TIMEOUT serves the request
# that thawed it (it used to find itself idle and exit under it: 503).
start_service thaw "$BIN/wakeq-worker" --concurrency 1 --max 3 --idle 60 -- \
	"${WORKER_ENV[@]}" QUEUES=thaw IDLE_TIMEOUT=0.3
codes=()
for i in 1 2 3 4 5 6 7; do
	codes+=("$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$thaw_URL/wake")")
	sleep 0.6
done
expect_eq "7 wakes, each after a freeze over IDLE_TIMEOUT: all answered, one instance" \
	"200 200 200 200 200 200 200 / 1 0" \
	"${codes[*]} / $(mstat thaw '"\(.starts) \(.failed_503)"')"
stop_service thaw

# ---- 2. idle cron ticks ---------------------------------------------------------
start_service worker "$BIN/wakeq-worker" --concurrency 1 --max 3 --idle 30 --timeout 30 \
	--pending 10 -- "${WORKER_ENV[@]}"
monitor_start "$T/monitor"
# tick_measure LABEL [SERVICE]: one tick, prints "LABEL wall billed
# commands"; the commands of the tick are left in $T/tick.cmds
tick_measure() {
	local svc=${2:-worker} c0 b0 w url
	eval "url=\$${svc}_URL"
	c0=$(client_cmds "$T/monitor" | wc -l)
	b0=$(mstat "$svc" .billed_request_s)
	w=$(curl -s -o "$T/tick.json" -w '%{time_total}' -XPOST "$url/wake")
	wait_until 2 mstat_is "$svc" '[.instances[] | select(.open > 0)] | length' 0
	sleep 0.2 # MONITOR lines may trail
	client_cmds "$T/monitor" | tail -n +$((c0 + 1)) >"$T/tick.cmds"
	echo "$1 $w $(mstat "$svc" ".billed_request_s - $b0 | . * 1000 | round / 1000") $(wc -l <"$T/tick.cmds")"
}
cold=$(tick_measure cold)
awk '{print $4}' "$T/tick.cmds" | tr -d '"' | sort | uniq -c | tr '\n' ' ' | sed 's/^/# cold tick commands: /'
echo
expect_eq "an empty tick drains nothing" "0 idle" "$(jq -r '"\(.drain.jobs) \(.drain.reason)"' "$T/tick.json")"
n0=$(client_cmds "$T/monitor" | wc -l)
sleep 1
expect_eq "a frozen instance sends nothing" "$n0" "$(client_cmds "$T/monitor" | wc -l)"
warm=()
for i in 1 2 3; do warm+=("$(tick_measure warm)"); done
awk '{print $4}' "$T/tick.cmds" | tr -d '"' | sort | uniq -c | tr '\n' ' ' | sed 's/^/# warm tick commands: /'
echo
echo "# idle ticks (label, wall s, billed s, redis commands): $cold | ${warm[*]}"
read -r _ cw cb cc <<<"$cold"
read -r _ ww wb wc <<<"${warm[2]}"
check "an empty tick answers at once, not after IDLE_TIMEOUT ${IDLE}s (cold ${cw}s, warm ${ww}s)" \
	awk -v a="$cw" -v b="$ww" 'BEGIN { exit !(a < 0.5 && b < 0.5) }'
check "a warm idle tick bills one 100 ms step (${wb}s)" awk -v b="$wb" 'BEGIN { exit !(b <= 0.1) }'
check "a cold idle tick bills start-up and one step (${cb}s)" awk -v b="$cb" 'BEGIN { exit !(b <= 0.2) }'
expect_eq "a warm idle tick runs 2 scripts: a take that registers, a retire" 2 \
	"$(grep -c '"EVALSHA"' "$T/tick.cmds")"
# Upstash bills per command (an EVALSHA is one): an idle tick sends at most
# 3, cold (the connection's TIME) or warm (the connection is kept).
check "an idle tick sends at most 3 Redis commands (cold $cc, warm $(printf '%s ' "${warm[@]}" |
	awk '{printf "%s %s %s", $4, $8, $12}'))" \
	awk -v c="$cc" -v w="${warm[*]}" 'BEGIN { n = split(w, a, " "); ok = c <= 3
		for (i = 4; i <= n; i += 4) ok = ok && a[i] <= 3; exit !ok }'
# Registered inside the take, the worker is still live to the API for the
# whole drain: from its first take, then by the heartbeat past the
# registration's first lifetime (3 x LEASE/3 = 2 s here).
live() { [ "$(rcli zcount "$Q:workers" "($(date +%s%3N)" +inf)" -ge 1 ]; }
lid=$(wq enqueue sleep --payload '{"ms":3500}' 2>/dev/null)
curl -s -o /dev/null -XPOST "$worker_URL/wake" &
held=$!
wait_until 3 all_in active "$lid"
check "a draining worker is live to the API from its first take" live
sleep 2.5
check "and still live 2.5 s later, past the take's registration (the heartbeat's)" live
wait "$held"
expect_eq "the job ran, and the drain retired" "done 0" "$(job_field "$lid" status) $(rcli zcard "$Q:workers")"
# What an empty tick cost before, kept as a setting: EMPTY_WAKE_LINGER.
start_service linger "$BIN/wakeq-worker" --concurrency 1 --max 1 --idle 30 -- \
	"${WORKER_ENV[@]}" QUEUES=linger EMPTY_WAKE_LINGER=$IDLE
tick_measure cold linger >/dev/null
lw=$(tick_measure warm linger)
echo "# EMPTY_WAKE_LINGER=$IDLE (as before): $lw"
read -r _ ww wb wc <<<"$lw"
check "EMPTY_WAKE_LINGER=$IDLE: an empty tick lingers as before (${ww} s, billed ${wb} s)" \
	awk -v w="$ww" -v b="$wb" -v i="$IDLE" 'BEGIN { exit !(w >= i && b >= i) }'
stop_service linger
# A kept instance's tick after its connection idled past REDIS_IDLE_MAX
# replaces it, paying a cold tick's TIME: every tick of a 5-minute cron
# with the default 60 s (3 commands, 864 a day in docs/CLOUDRUN.md).
start_service idlemax "$BIN/wakeq-worker" --concurrency 1 --max 1 --idle 30 -- \
	"${WORKER_ENV[@]}" QUEUES=idlemax REDIS_IDLE_MAX=1
tick_measure cold idlemax >/dev/null
sleep 1.5
tick_measure warm idlemax >/dev/null
expect_eq "a warm tick past REDIS_IDLE_MAX: a new connection's TIME, a take, a retire" "3 1" \
	"$(wc -l <"$T/tick.cmds") $(grep -c '"TIME"' "$T/tick.cmds")"
tick_measure warm idlemax >/dev/null
expect_eq "the next, within it: the connection kept, no TIME" "2 0" \
	"$(wc -l <"$T/tick.cmds") $(grep -c '"TIME"' "$T/tick.cmds")"
stop_service idlemax

# ---- 3. the API as deployed: request-based CPU, wakes held by Cloud Tasks ----------
# As cloudrun/api.service.yaml deploys it: WAKE_VIA=cloudtasks and
# API_TIMERS=off, so the API does nothing once it has answered. fakegcp is
# Cloud Tasks and the metadata server: a task is made before the answer
# and dispatched to the worker's proxy, held for the whole drain; a delayed
# job's task waits for its scheduleTime.
start_gcp
TASKS_ENV=(WAKE_VIA=cloudtasks TASKS_ENDPOINT=$G TASKS_LOCATION=us-central1
	TASKS_QUEUE=wakeq-wake TASKS_SERVICE_ACCOUNT=wakeq-tasks@fake-project.iam.gserviceaccount.com
	GCE_METADATA_HOST=${G#http://})
api_env() { # the API's settings, waking the worker service of now
	API_ENV=(HOST=127.0.0.1 REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL API_TOKEN=$TOKEN
		WAKE_URL=$worker_URL/wake)
}
stop_service worker
start_service worker "$BIN/wakeq-worker" --concurrency 1 --max 3 --idle 30 --timeout 30 \
	--pending 10 -- "${WORKER_ENV[@]}" "${TASKS_ENV[@]}"
api_env
start_service api "$BIN/wakeq-api" --concurrency 80 --max 1 --idle 60 --timeout 30 -- \
	"${API_ENV[@]}" "${TASKS_ENV[@]}" API_TIMERS=off WAKE_MAX=20
sleeping() { mstat_is worker '[.instances[] | select(.open > 0)] | length' 0; }
# settled: no worker registered, none holding a request (a drain ended)
settled() { sleeping && [ "$(rcli zcard "$Q:workers")" = 0 ]; }
# runs_asleep NAME SECONDS JOB: JOB posted to the sleeping system is done
# within SECONDS, with no cron tick
runs_asleep() {
	local r0 id done=no
	r0=$(mstat worker .requests)
	id=$(post "$3")
	wait_until "$2" all_in done "$id" && done=yes
	check "$1 (worker requests +$(($(mstat worker .requests) - r0)))" test $done = yes
}
wait_until 5 sleeping
runs_asleep "a job posted to a sleeping system runs without a cron tick" 3 '{"type":"noop"}'
wait_until 5 settled
# due after IDLE_TIMEOUT: no drain holds it, its Cloud Tasks task does
runs_asleep "a delayed job posted to a sleeping system runs when due" 5 \
	'{"type":"noop","delay_s":2.5}'
echo "# API billed $(mstat api .billed_request_s) s (request-based), frozen now: $(mstat api '.instances[0].frozen')"
check "the API did no work outside its requests: frozen" mstat_is api '.instances[0].frozen' true
stop_service api
# The API instance shut down while the job it posted runs: the wake is
# Cloud Tasks', not the API's.
wait_until 5 settled
start_service api "$BIN/wakeq-api" --concurrency 80 --max 1 --idle 1.5 --timeout 30 -- \
	"${API_ENV[@]}" "${TASKS_ENV[@]}" API_TIMERS=off WAKE_MAX=20
id=$(post '{"type":"sleep","payload":{"ms":3000}}')
check "the API's task started it" wait_until 3 all_in active "$id"
check "the API instance is shut down while the job runs" wait_until 4 mstat_is api .reaps 1
check "a job outlives the API instance that woke the worker" wait_until 6 all_in done "$id"
stop_service api
wait_until 5 settled

# With WAKE_VIA=http (not for request-based CPU: docs/CLOUDRUN.md) the
# wake is still handed off before the answer.
start_service api "$BIN/wakeq-api" --concurrency 80 --max 1 --idle 60 --timeout 30 -- \
	"${API_ENV[@]}" API_TIMERS=off
runs_asleep "WAKE_VIA=http: a job posted to a sleeping system runs without a cron tick" 3 \
	'{"type":"noop"}'
wait_until 5 settled
stop_service api
stop_service worker
expect_eq "stopped services leave no worker registered" 0 "$(rcli zcard "$Q:workers")"
start_service worker "$BIN/wakeq-worker" --concurrency 1 --max 3 --idle 30 --timeout 30 \
	--pending 10 -- "${WORKER_ENV[@]}"
api_env

# ---- 4. the API with CPU outside requests (instance-based billing) -----------------
start_service api "$BIN/wakeq-api" --billing instance --concurrency 80 --max 1 --idle 60 \
	--timeout 30 -- "${API_ENV[@]}" WAKE_FANOUT_MAX=3 WORKER_CONCURRENCY=4 WAKE_BACKLOG=2
ok_ids=() fail_ids=() delayed=()
for i in $(seq 1 12); do
	if [ $((i % 2)) = 0 ]; then
		ok_ids+=("$(post "{\"type\":\"sleep\",\"payload\":{\"ms\":$((50 + RANDOM % 200))}}")")
	else
		ok_ids+=("$(post '{"type":"noop"}')")
	fi
	[ "$i" = 4 ] && delayed+=("$(post '{"type":"noop","delay_s":1}')")
	[ "$i" = 8 ] && fail_ids+=("$(post '{"type":"fail","payload":{"retryable":true},"max_attempts":3}')")
	sleep "0.$((RANDOM % 3))"
done
check "the API instance is never frozen with instance-based billing" mstat_is api '.instances[0].frozen' false
mapfile -t -O ${#ok_ids[@]} ok_ids < <(post_burst 20 '{"type":"sleep","payload":{"ms":100}}')
delayed+=("$(post '{"type":"noop","delay_s":2.5}')" "$(post '{"type":"noop","delay_s":4}')")
fail_ids+=("$(post '{"type":"fail","payload":{"retryable":false}}')")
expect_eq "every POST was accepted" "$((32 + 3))" "$(printf '%s\n' "${ok_ids[@]}" "${delayed[@]}" | grep -c .)"
wait_until 10 all_in done "${ok_ids[@]}"
expect_eq "jobs at random times and a burst all end done" "32 done" "$(statuses "${ok_ids[@]}")"
wait_until 5 all_in failed "${fail_ids[@]}"
expect_eq "retries end in the dead letter as intended" "2 failed" "$(statuses "${fail_ids[@]}")"
expect_eq "the retryable one made 3 attempts" 3 "$(rcli hget "$Q:job:${fail_ids[0]}" attempts)"
wait_until 8 all_in done "${delayed[@]}"
expect_eq "delayed jobs run without a tick, the last one due 4 s later" "3 done" \
	"$(statuses "${delayed[@]}")"
for id in "${delayed[@]}"; do
	l=$(lag "$id")
	check "delayed job started within 1 s of its run time (${l} s)" test "$l" -le 1
done
echo "# worker service: $(mstat worker '"\(.starts) starts, \(.requests) requests, \(.billed_request_s) s billed (request-based)"')"

# A worker SIGKILLed mid-drain: its leases expire and the jobs run again.
wait_until 5 sleeping
kill_ids=()
for i in 1 2 3 4; do kill_ids+=("$(post '{"type":"sleep","payload":{"ms":1500}}')"); done
wait_until 5 all_in active "${kill_ids[@]}"
sleep 0.6 # the heartbeat reports the runs begun: their attempts count
pid=$(inst_pid worker '.open > 0')
check "a worker instance is draining (pid $pid)" test -n "$pid"
kill -KILL "$pid"
wait_until 3 state_is "$pid" gone
check "its held /wake failed: 503" wait_until 2 mstat_is worker '.failed_503 > 0' true
sleep 2.5 # LEASE 2 s: the leases run out
more=$(post '{"type":"noop"}')
wait_until 8 all_in done "${kill_ids[@]}" "$more"
expect_eq "the next job wakes a new instance that runs them again" "5 done" \
	"$(statuses "${kill_ids[@]}" "$more")"
expect_eq "each ran twice (at least once)" "4 2" "$(attempts "${kill_ids[@]}")"
# the drain has ended (retired, its wake answered) before the API goes
wait_until 5 settled
stop_service api
stop_service worker

# ---- 5. the same mix as deployed: request-based CPU, Cloud Tasks, no cron ----------
# Section 4's mix with the API and the worker as cloudrun/*.yaml deploy
# them (section 3's settings: WAKE_VIA=cloudtasks, API_TIMERS=off; a worker
# instance serves one request at a time). Every wake is a Cloud Tasks
# task's dispatch: nothing here ticks. Each run that finishes appends its
# job id to $T/runs (as 61_cloudtasks counts them), so "done exactly once"
# is seen from the handlers' side too. LEASE (4 s) is longer than
# IDLE_TIMEOUT, as deployed (60 s and 10 s): a drain does not wait for a
# lease to run out.
cat >"$T/handlers.json" <<EOF
{"handlers": {
 "note": {"command": ["/bin/sh", "-c", "sleep 0.1; echo \$WAKEQ_JOB_ID >>$T/runs"]},
 "slow": {"command": ["/bin/sh", "-c", "sleep 1.5; echo \$WAKEQ_JOB_ID >>$T/runs"]},
 "flaky": {"command": ["/bin/sh", "-c",
   "f=$T/flaky.\$WAKEQ_JOB_ID; [ -e \$f ] || { : >\$f; exit 75; }; echo \$WAKEQ_JOB_ID >>$T/runs"],
  "retry_exit_codes": [75], "max_attempts": 3}
}}
EOF
: >"$T/runs"
LEASE5=4
t5=$SECONDS
start_service worker "$BIN/wakeq-worker" --concurrency 1 --max 3 --idle 30 --timeout 30 \
	--pending 10 -- "${WORKER_ENV[@]}" "${TASKS_ENV[@]}" LEASE=$LEASE5 BACKOFF_BASE=2 \
	BACKOFF_CAP=2 HANDLERS_FILE="$T/handlers.json"
api_env
start_service api "$BIN/wakeq-api" --concurrency 80 --max 1 --idle 60 --timeout 30 -- \
	"${API_ENV[@]}" "${TASKS_ENV[@]}" API_TIMERS=off WAKE_MAX=20 WAKE_FANOUT_MAX=3 \
	WORKER_CONCURRENCY=4 WAKE_BACKLOG=2 HANDLERS_FILE="$T/handlers.json"
ntasks0=$(curl -s "$G/fake/tasks" | jq '.tasks | length')
# the dispatches of the tasks made since ntasks0, to the worker's proxy
dispatches() {
	curl -s "$G/fake/tasks" | jq --arg u "$worker_URL/wake" --argjson n "$ntasks0" \
		'[.tasks[$n:][] | select(.url == $u) | .dispatches] | add // 0'
}
ids=() flaky=() delayed=()
for i in $(seq 1 12); do
	ids+=("$(post '{"type":"note"}')")
	[ "$i" = 3 ] && delayed+=("$(post '{"type":"note","delay_s":1}')")
	[ "$i" = 6 ] && flaky+=("$(post '{"type":"flaky"}')")
	[ "$i" = 9 ] && flaky+=("$(post '{"type":"flaky"}')")
	sleep "0.$((RANDOM % 3))"
done
mapfile -t -O ${#ids[@]} ids < <(post_burst 20 '{"type":"note"}')
delayed+=("$(post '{"type":"note","delay_s":2.5}')" "$(post '{"type":"note","delay_s":4}')")
all=("${ids[@]}" "${flaky[@]}" "${delayed[@]}")
expect_eq "every POST was accepted" 37 "$(printf '%s\n' "${all[@]}" | grep -c .)"
wait_until 15 all_in done "${all[@]}"
expect_eq "as deployed: jobs at random times, a burst, retries, delayed jobs all end done" \
	"37 done" "$(statuses "${all[@]}")"
expect_eq "each flaky job failed once, then ran again: 2 attempts" "2 2" "$(attempts "${flaky[@]}")"
for id in "${delayed[@]}"; do
	l=$(lag "$id")
	# Cloud Tasks schedules to the second (61_cloudtasks)
	check "delayed job started within 2 s of its run time (${l} s)" test "$l" -le 2
done
# ran_once ID...: each ID finished exactly once, and nothing else did
ran_once() {
	[ "$(sort "$T/runs" | uniq -c | awk '$1 != 1' | wc -l)" = 0 ] &&
		[ "$(printf '%s\n' "$@" | sort)" = "$(sort "$T/runs")" ]
}
check "each job ran to its end exactly once ($(wc -l <"$T/runs") runs)" ran_once "${all[@]}"
wait_until 10 settled
echo "# as deployed: API $(mstat api '"\(.billed_request_s) s billed, frozen: \(.instances[0].frozen)"'); worker $(mstat worker '"\(.starts) starts, \(.requests) requests, \(.billed_request_s) s billed"'); $(($(curl -s "$G/fake/tasks" | jq '.tasks | length') - ntasks0)) tasks"
check "the API did no work outside its requests: frozen" mstat_is api '.instances[0].frozen' true

# Worker instances SIGKILLed mid-drain, and no request after: their jobs
# run again once their leases run out, woken by what the system arranged
# (docs/CLOUDRUN.md), not by a new job nor a cron tick.
kill_ids=()
for i in 1 2 3 4; do kill_ids+=("$(post '{"type":"slow"}')"); done
wait_until 5 all_in active "${kill_ids[@]}"
no_task_pending() { mstat_is worker '[.instances[] | select(.open > 0)] | length > 0' true &&
	[ "$(curl -s "$G/fake/tasks" | jq '[.tasks[] | select(.state == "pending")] | length')" = 0 ]; }
# the wakes of those posts (a follow-up comes 2 s after a first) are all in
check "every wake task of the posts is dispatched" wait_until 4 no_task_pending
sleep 0.3 # the heartbeat reports the runs begun: their attempts count
pids=$(mstat worker '[.instances[] | select(.open > 0) | .pid] | join(" ")')
requests0=$(mstat worker .requests)
check "worker instances are draining the jobs (pids $pids)" test -n "$pids"
# shellcheck disable=SC2086
kill -KILL $pids
t_kill=$(date +%s%N)
for pid in $pids; do wait_until 3 state_is "$pid" gone; done
check "their held dispatches failed: 503" wait_until 2 mstat_is worker '.failed_503 > 0' true
recovered=no
wait_until $((LEASE5 + 8)) all_in done "${kill_ids[@]}" && recovered=yes
took=$(awk -v a="$t_kill" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
echo "# SIGKILL mid-drain, no traffic after it: $recovered, ${took} s from the kill to all done (LEASE $LEASE5 s)"
check "with no new traffic and no cron tick, the jobs of the killed workers end done" \
	test $recovered = yes
check "within LEASE + 3 s of the kill (${took} s): woken when the leases ran out" \
	awk -v t="$took" -v l=$LEASE5 'BEGIN { exit !(t < l + 3) }'
expect_eq "each ran a second time (at least once)" "4 2" "$(attempts "${kill_ids[@]}")"
check "each ran to its end exactly once (the cut runs died with their worker)" \
	ran_once "${all[@]}" "${kill_ids[@]}"
check "the cut dispatches were retried by Cloud Tasks" \
	test "$(curl -s "$G/fake/tasks" | jq '[.tasks[] | select(.statuses | index(503))] | length')" -ge 1
grep -q 'next wake arranged: leases' "$T/worker.log"
check "the retried wake arranged the wake for the leases' expiry" test $? = 0
echo "# worker requests since the kill: $(($(mstat worker .requests) - requests0))"
wait_until 10 settled
expect_eq "every request the worker service got was a Cloud Tasks dispatch: no cron tick" \
	"$(dispatches)" "$(mstat worker .requests)"
stop_service api
stop_service worker
echo "# section 5: $((SECONDS - t5)) s"
echo "# $((SECONDS - t_start)) s"
[ "$_t_failed" = 0 ] || { diag "$T/model-worker.log"; diag "$T/model-api.log"; }
exit 0
