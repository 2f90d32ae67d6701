#!/usr/bin/env bash
# cloudrun.sh - what wakeq costs on Cloud Run (issue 10), measured under
# the model of it (tests/tools/runmodel.c, docs/CLOUDRUN.md): request-based
# billing rounded up to 100 ms a piece, the services set as
# cloudrun/*.service.yaml sets them (wakes through Cloud Tasks, faked by
# tests/tools/fakegcp; API_TIMERS off), real Redis and Postgres.
#
#   tests/bench/cloudrun.sh                 figures into docs/BENCHMARKS.md
#   NOWRITE=1 TICKS=5 COLD_TICKS=2 JOBS=200 ISOLATED=1 LAT_RUNS=3 IDLE=2 \
#       BULL_WINDOW=10 tests/bench/cloudrun.sh     a quick look, nothing written
#   PEERS= ...                              without the BullMQ measurement
#
# Figures:
#   idle ticks: POST /wake with nothing to do, to a kept (frozen) instance
#     (warm) and to a service at zero (cold): billed worker seconds (the
#     meter), Redis commands (client commands in a MONITOR: an EVALSHA is
#     one, as per-command billing counts it), wall time; per idle day
#     extrapolated (288 ticks of a 5-minute cron; 24 of an hourly cron
#     when Cloud Tasks makes every wake work needs);
#   four always-on BullMQ workers on an idle queue, BULL_WINDOW seconds
#     of their commands on a Redis of their own, extrapolated to a day;
#   per 1,000 jobs: a burst of JOBS POST /v1/jobs, and ISOLATED jobs each
#     posted to a sleeping system: API and worker billed seconds, Redis
#     commands;
#   latency from zero: POST /v1/jobs to the job's first take (its
#     `started` stamp) with the worker service at zero instances, and with
#     an instance kept (frozen); the model's process start to that take;
#     against a bare launch of the worker binary (--version) in the same run.
set -eu
. "$(dirname "$0")/../lib/bench.sh"
. tests/lib/runmodel.sh

TICKS=${TICKS:-20}             # warm idle ticks
COLD_TICKS=${COLD_TICKS:-5}    # cold idle ticks (the instance shut down between)
JOBS=${JOBS:-1000}             # jobs of the burst
ISOLATED=${ISOLATED:-2}        # jobs posted one at a time to a sleeping system
LAT_RUNS=${LAT_RUNS:-7}        # jobs posted to a system at zero (and to a kept one)
IDLE=${IDLE:-10}               # the worker's IDLE_TIMEOUT (worker.service.yaml: 10)
BULL_WORKERS=${BULL_WORKERS:-4}
BULL_WINDOW=${BULL_WINDOW:-30} # seconds of BullMQ's idle commands counted
PEERS=${PEERS-bullmq}
IDLE_S=$(awk -v i="$IDLE" 'BEGIN {printf "%d", i + 1}') # whole seconds, for waits

bench_need "$BIN/wakeq-worker" "$BIN/wakeq-api" "$MODEL_BIN" "$BIN/tests/tools/fakegcp" \
	"$BIN/tests/bench/spawnloop" "$FREEPORT" -- jq

t_tmpdir
log() { echo "# $*" >&2; }
# Snapshots, so a rebuild of the shared build/ meanwhile cannot mix builds.
mkdir -p "$T/bin"
for b in wakeq-worker wakeq-api tests/tools/runmodel tests/tools/fakegcp tests/bench/spawnloop; do
	cp "$BIN/$b" "$T/bin/"
done
[ ! -f "$BIN/wakeq-media.so" ] || cp "$BIN/wakeq-media.so" "$T/bin/"
WORKER=$T/bin/wakeq-worker API=$T/bin/wakeq-api MODEL_BIN=$T/bin/runmodel
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $load0"

start_redis
redis_version=$(rcli info server | awk -F: '/^redis_version:/ {print $2}' | tr -d '\r')
start_postgres >/dev/null
A_PORT=$REDIS_PORT

# ---- BullMQ, idle, in the background on a Redis of its own ---------------------
BULL_OK=0 BULL_WHY="left out (PEERS)"
[[ " $PEERS " != *" bullmq "* ]] || bullmq_ready
BULL_BG=
if [ "$BULL_OK" = 1 ]; then
	start_redis
	B_PORT=$REDIS_PORT
	REDIS_PORT=$A_PORT REDIS_URL=redis://127.0.0.1:$A_PORT
	log "BullMQ: $BULL_WORKERS idle workers for $BULL_WINDOW s (background)"
	(
		redis-cli -p "$B_PORT" monitor >"$T/bull.mon" 2>/dev/null &
		mon=$!
		trap 'kill $mon 2>/dev/null' EXIT
		NODE_PATH=$NPM_DIR/node_modules node tests/bench/cloudrun/bullmq_idle.js \
			"$B_PORT" "$BULL_WORKERS" "$BULL_WINDOW" 2>"$T/bull.err" |
			while read -r l; do
				sleep 0.2 # MONITOR lines may trail
				[ "$l" = ready ] && client_cmds "$T/bull.mon" | wc -l >"$T/bull.c0"
				[ "$l" = end ] && client_cmds "$T/bull.mon" | wc -l >"$T/bull.c1"
			done
	) &
	BULL_BG=$!
	on_exit "kill $BULL_BG"
fi

# ---- the services ---------------------------------------------------------------
"$T/bin/fakegcp" >"$T/gcp.port" 2>>"$T/gcp.log" &
on_exit "kill_wait $!"
wait_until 5 test -s "$T/gcp.port"
G=http://127.0.0.1:$(head -1 "$T/gcp.port")
SA=wakeq-tasks@fake-project.iam.gserviceaccount.com
TASKS=(WAKE_VIA=cloudtasks TASKS_ENDPOINT=$G TASKS_LOCATION=us-central1 TASKS_QUEUE=wakeq-wake
	TASKS_SERVICE_ACCOUNT=$SA GCE_METADATA_HOST=${G#http://})
# as worker.service.yaml (containerConcurrency 1) and api.service.yaml
WENV=(HOST=127.0.0.1 REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL EXIT_ON_IDLE=true
	WAKE_MAX=1740 SHUTDOWN_GRACE=8 LOG_LEVEL=warn "${TASKS[@]}")
TOKEN=tok-bench
AH="Authorization: Bearer $TOKEN"
CT="Content-Type: application/json"
worker_svc() { # worker_svc NAME MODEL_IDLE IDLE_TIMEOUT
	start_service "$1" "$WORKER" --concurrency 1 --max 10 --idle "$2" --timeout 3600 \
		--pending 30 -- "${WENV[@]}" IDLE_TIMEOUT="$3"
}
api_svc() { # api_svc NAME WORKER_SERVICE
	local url
	eval "url=\$${2}_URL"
	start_service "$1" "$API" --concurrency 80 --max 1 --idle 3600 --timeout 3600 -- \
		HOST=127.0.0.1 REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" API_TOKEN=$TOKEN \
		API_TIMERS=off LOG_LEVEL=warn WAKE_URL="$url/wake" "${TASKS[@]}"
	eval "url=\$${1}_URL"
	curl -fs -o /dev/null "$url/healthz" # started, then frozen
}
worker_svc kw 3600 "$IDLE"  # an instance kept between wakes
worker_svc zw 0.3 0.3       # shut down 0.3 s after its last request: at zero
worker_svc lw 3600 0.3      # kept, and asleep 0.3 s after a job (latency runs)
api_svc ka kw
api_svc za zw
api_svc la lw

monitor_start "$T/mon"
ncmds() { sleep 0.2; client_cmds "$T/mon" | wc -l; } # (MONITOR lines may trail)
billed() { mstat "$1" .billed_request_s; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
open_none() { mstat_is "$1" '[.instances[] | select(.open > 0)] | length' 0; }
at_zero() { mstat_is "$1" .instances_alive 0; }
tasks_idle() { [ "$(curl -s "$G/fake/tasks" | jq '[.tasks[] | select(.state == "pending" or .state == "dispatching")] | length')" = 0 ]; }
asleep() { tasks_idle && open_none "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
maxof() { sort -g | tail -1; }
# tick SERVICE: one idle cron tick; prints "wall_s billed_s commands"
tick() {
	local url c0 b0 w
	eval "url=\$${1}_URL"
	c0=$(ncmds)
	b0=$(billed "$1")
	w=$(curl -s -o "$T/tick.json" -w '%{time_total}' -XPOST -H 'X-Wakeq-Trigger: cron' "$url/wake")
	wait_until 5 open_none "$1"
	[ "$(jq -r .drain.jobs "$T/tick.json")" = 0 ] || { echo "cloudrun.sh: a tick found work" >&2; exit 1; }
	if [ "$1" = zw ]; then wait_until 15 at_zero zw; fi # shutdown included
	echo "$w $(sub "$(billed "$1")" "$b0" | awk '{printf "%.1f", $1}') $(($(ncmds) - c0))"
}

# ---- idle ticks -------------------------------------------------------------------
log "idle ticks: $TICKS warm, $COLD_TICKS cold"
tick kw >/dev/null # the instance starts
for _ in $(seq 1 "$TICKS"); do sleep 0.1; tick kw; done >"$T/warm"
for _ in $(seq 1 "$COLD_TICKS"); do tick zw; done >"$T/cold"
cold_start_s=$(mstat zw .cold_start.mean_s)
sed 's/^/# warm tick (wall billed commands): /' "$T/warm" >&2
sed 's/^/# cold tick (wall billed commands): /' "$T/cold" >&2
col() { awk -v c="$2" '{print $c}' "$1"; }
warm_wall=$(col "$T/warm" 1 | median) warm_billed=$(col "$T/warm" 2 | median)
warm_cmds=$(col "$T/warm" 3 | median) warm_cmds_max=$(col "$T/warm" 3 | maxof)
cold_wall=$(col "$T/cold" 1 | median) cold_billed=$(col "$T/cold" 2 | median)
cold_cmds=$(col "$T/cold" 3 | median) cold_cmds_max=$(col "$T/cold" 3 | maxof)

# ---- per 1,000 jobs -----------------------------------------------------------------
# post_burst N: N POST /v1/jobs, 8 at a time; prints how many got 202
post_burst() {
	local i
	for i in $(seq 1 "$1"); do printf 'url = "%s/v1/jobs"\noutput = /dev/null\n' "$ka_URL"; done >"$T/burst.cfg"
	curl -sS --no-progress-meter -Z --parallel-max 8 -H "$AH" -H "$CT" -d '{"type":"noop"}' -w '%{http_code}\n' \
		-K "$T/burst.cfg" | grep -c '^202$' || true
}
# phase LABEL N CMD...: runs CMD (it posts N jobs), waits until the system
# sleeps again, prints "LABEL n= api_s= worker_s= cmds= wall_s="
phase() {
	local label=$1 n=$2 c0 a0 w0 t0 t1
	shift 2
	c0=$(ncmds) a0=$(billed ka) w0=$(billed kw) t0=$(date +%s.%N)
	"$@" >"$T/posted"
	sleep 0.5 # the task's dispatch
	wait_until $((IDLE_S * 3 + 60)) asleep kw
	t1=$(date +%s.%N)
	echo "$label n=$n api_s=$(sub "$(billed ka)" "$a0") worker_s=$(sub "$(billed kw)" "$w0")" \
		"cmds=$(($(ncmds) - c0)) wall_s=$(sub "$t1" "$t0")"
	# which commands, for the record
	client_cmds "$T/mon" | tail -n +$((c0 + 1)) | awk '{print $4}' | tr -d '"' | sort | uniq -c |
		sort -rn | awk -v l="$label" 'BEGIN {printf "%s commands:", l} {printf " %s %s", $2, $1} END {print ""}' \
		>>"$T/detail"
}
post_one() { curl -s -o /dev/null -H "$AH" -H "$CT" -d '{"type":"noop"}' "$ka_URL/v1/jobs"; }
wait_until $((IDLE_S + 30)) asleep kw
log "a burst of $JOBS jobs"
phase burst "$JOBS" post_burst "$JOBS" >>"$T/jobs"
tail -1 "$T/jobs" >&2
[ "$(cat "$T/posted")" = "$JOBS" ] || { echo "cloudrun.sh: $(cat "$T/posted") of $JOBS posts accepted" >&2; exit 1; }
[ "$(rcli zcard 'wakeq:{default}:done')" -ge "$JOBS" ] ||
	{ echo "cloudrun.sh: not every job of the burst is done" >&2; exit 1; }
log "$ISOLATED isolated jobs (IDLE_TIMEOUT $IDLE s each)"
for i in $(seq 1 "$ISOLATED"); do
	phase isolated 1 post_one >>"$T/jobs"
	tail -1 "$T/jobs" >&2
done
per1000() { # per1000 LABEL KEY: KEY per 1,000 jobs over the LABEL lines
	grep "^$1 " "$T/jobs" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == "n" {n += $2} $1 == k {s += $2}
		END {printf "%.1f", n ? s * 1000 / n : 0}'
}
sum() { grep "^$1 " "$T/jobs" | tr ' ' '\n' | awk -F= -v k="$2" -v f="${3:-%.1f}" '$1 == k {s += $2} END {printf f, s}'; }

# ---- latency from zero, and from a kept instance ------------------------------------
# lat API_SERVICE WORKER_SERVICE: one job; prints "e2e_ms spawn_to_take_ms"
lat() {
	local api wsvc=$2 t0 id st sp
	eval "api=\$${1}_URL"
	t0=$(date +%s%6N)
	id=$(curl -s -H "$AH" -H "$CT" -d '{"type":"noop"}' "$api/v1/jobs" | jq -r .id)
	wait_until 10 bash -c "[ -n \"\$(redis-cli -p $A_PORT hget 'wakeq:{default}:job:$id' started)\" ]"
	st=$(rcli hget "wakeq:{default}:job:$id" started)
	sp=$(mstat "$wsvc" '[.instances[] | select(.state != "stopping")] | max_by(.started_at) | .started_at')
	awk -v s="$st" -v t="$t0" -v p="$sp" 'BEGIN {printf "%.1f %.1f\n", (s - t) / 1000, s / 1000 - p * 1000}'
}
log "latency: $LAT_RUNS jobs to a service at zero, $LAT_RUNS to a kept instance"
wait_until 15 at_zero zw
for _ in $(seq 1 "$LAT_RUNS"); do
	lat za zw >>"$T/lat0"
	wait_until 15 at_zero zw
done
lat la lw >/dev/null # lw's instance starts, and is kept
for _ in $(seq 1 "$LAT_RUNS"); do
	wait_until 30 asleep lw
	lat la lw >>"$T/latk"
done
sed 's/^/# from zero (POST->take ms, spawn->take ms): /' "$T/lat0" >&2
sed 's/^/# kept instance (POST->take ms): /' "$T/latk" >&2
zero_p50=$(col "$T/lat0" 1 | median) zero_max=$(col "$T/lat0" 1 | maxof)
spawn_p50=$(col "$T/lat0" 2 | median) spawn_max=$(col "$T/lat0" 2 | maxof)
kept_p50=$(col "$T/latk" 1 | median) kept_max=$(col "$T/latk" 1 | maxof)
model_cold_ms=$(mstat zw '.cold_start.mean_s * 1000 | . * 10 | round / 10')
"$T/bin/spawnloop" 21 '{}' "$WORKER" --version >"$T/bare"
bare_ms=$(sed -n 's/.*per_us_p50=\([0-9.]*\).*/\1/p' "$T/bare" | awk '{printf "%.1f", $1 / 1000}')
log "bare launch of wakeq-worker --version: $(cat "$T/bare")"

# ---- BullMQ's result ------------------------------------------------------------------
bull_day="not measured: $BULL_WHY"
if [ -n "$BULL_BG" ]; then
	wait "$BULL_BG" || true
	if [ -s "$T/bull.c0" ] && [ -s "$T/bull.c1" ]; then
		bull_n=$(($(cat "$T/bull.c1") - $(cat "$T/bull.c0")))
		bull_day=$(awk -v n="$bull_n" -v w="$BULL_WINDOW" 'BEGIN {printf "%.0f", n * 86400 / w}')
		bull_detail=$(client_cmds "$T/bull.mon" | awk '{print $4}' | tr -d '"' | sort | uniq -c |
			awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1}')
		log "BullMQ: $bull_n commands in $BULL_WINDOW s ($bull_detail, start-up included in the detail)"
	else
		bull_day="not measured: the BullMQ run failed ($(head -c 200 "$T/bull.err" | tr '\n' ' '))"
	fi
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at end: $load1"

# ---- figures ------------------------------------------------------------------------------
fmt0() { # 12,345
	awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		print s r }'
}
day() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a * b}'; }
met() { awk -v m="$1" -v t="$2" 'BEGIN {print (m <= t) ? "yes" : "**no**"}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s * 1000}'; }
# The warm ticks measured are 0.1 s apart; a kept instance's tick 5 minutes
# after the last finds the drain's connection idle past REDIS_IDLE_MAX (60 s,
# the worker's default) and replaces it, paying the TIME a cold tick pays:
# that row is computed as the warm tick's commands + 1.
warm5_cmds=$(awk -v c="$warm_cmds" 'BEGIN {print c + 1}')
c5w=$(day 288 "$warm5_cmds") c5c=$(day 288 "$cold_cmds") chr=$(day 24 "$cold_cmds")
b5w=$(day 288 "$warm_billed") b5c=$(day 288 "$cold_billed") bhr=$(day 24 "$cold_billed")
# a cold tick bills its start-up (0.1 s) and its shutdown (SIGTERM to exit,
# 0.1 s) besides the request: what is left is the tick itself
cold_beyond=$(awk -v b="$cold_billed" 'BEGIN {printf "%.1f", b - 0.2}')
extra_ms=$(awk -v z="$zero_p50" -v k="$kept_p50" 'BEGIN {printf "%.1f", z - k}')
section=$(cat <<EOF
<!-- bench:cloudrun -->
## Cloud Run: idle cost, cost per 1,000 jobs, latency from zero

$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),
redis-server $redis_version and PostgreSQL (local, loopback TCP), \`tests/bench/cloudrun.sh\`
(TICKS=$TICKS, COLD_TICKS=$COLD_TICKS, JOBS=$JOBS, ISOLATED=$ISOLATED, LAT_RUNS=$LAT_RUNS,
IDLE=$IDLE). Load average at start / end: $load0 / $load1.

Under the model of Cloud Run ([CLOUDRUN.md](CLOUDRUN.md)): request-based
CPU and billing, every piece rounded up to 100 ms; the worker as
\`cloudrun/worker.service.yaml\` runs it (containerConcurrency 1,
\`IDLE_TIMEOUT=$IDLE\`, \`DATABASE_URL\`, wakes through Cloud Tasks, faked by
\`tests/tools/fakegcp\`), the API as \`api.service.yaml\` does (\`API_TIMERS=off\`).
Redis commands are the client commands in a \`MONITOR\` (an \`EVALSHA\` is
one, as Upstash's per-command billing counts it). The ticks are
measured; the day figures are computed from them (wakes × a tick's
billed seconds and commands), not measured over a day.

**Idle.** A tick is \`POST /wake\` with nothing to do: *warm* to an
instance kept (frozen) since the last request, *cold* to a service at
zero (the instance starts for it and is shut down after; its start-up
and shutdown bill 0.1 s each).

| tick | ticks measured | wall, median | billed worker s / tick | Redis commands / tick (max) |
|---|---|---|---|---|
| warm | $TICKS | $(ms "$warm_wall") ms | $warm_billed | $warm_cmds ($warm_cmds_max) |
| cold | $COLD_TICKS | $(ms "$cold_wall") ms (start-up $(ms "$cold_start_s") ms) | $cold_billed | $cold_cmds ($cold_cmds_max) |

| an idle day | wakes | billed worker s | Redis commands | target | met |
|---|---|---|---|---|---|
| 5-minute cron, the instance kept between ticks (commands: the warm tick's + 1 \`TIME\`, its connection idle past \`REDIS_IDLE_MAX\`, 60 s) | 288 | $b5w | $(fmt0 "$c5w") | ≤ 1,000 commands | $(met "$c5w" 1000) |
| 5-minute cron, every tick cold | 288 | $b5c | $(fmt0 "$c5c") | ≤ 1,000 commands | $(met "$c5c" 1000) |
| Cloud Tasks wakes for work, hourly cron (cold) | 24 | $bhr | $(fmt0 "$chr") | – | – |
| $BULL_WORKERS always-on BullMQ $BULLMQ_VERSION workers, idle queue ($BULL_WINDOW s measured in the same run; the issue's figure: ~70,000) | – | always on | $( [ -n "${bull_n:-}" ] && fmt0 "$bull_day" || echo "$bull_day") | – | – |

| target | measured | target | met |
|---|---|---|---|
| an idle tick bills worker time beyond process start | warm $warm_billed s; cold $cold_beyond s beyond start-up and shutdown | ≤ 0.1 s | $(met "$(printf '%s\n%s\n' "$warm_billed" "$cold_beyond" | maxof)" 0.1) |
| an idle tick sends Redis commands | warm $warm_cmds_max, cold $cold_cmds_max (max) | ≤ 3 | $(met "$(printf '%s\n%s\n' "$warm_cmds_max" "$cold_cmds_max" | maxof)" 3) |

**Per 1,000 jobs** (\`noop\` jobs; API and worker billed seconds from the
meter, Redis commands of both, from the first post until the system
sleeps again: the last drain's \`IDLE_TIMEOUT\` included).

| pattern | jobs | API billed s | worker billed s | Redis commands | per 1,000 jobs: API s / worker s / commands |
|---|---|---|---|---|---|
| a burst, 8 posts at a time | $(sum burst n %d) | $(sum burst api_s) | $(sum burst worker_s) | $(sum burst cmds %d) | $(per1000 burst api_s) / $(per1000 burst worker_s) / $(fmt0 "$(per1000 burst cmds)") |
| isolated: each posted to a sleeping system | $(sum isolated n %d) | $(sum isolated api_s) | $(sum isolated worker_s) | $(sum isolated cmds %d) | $(per1000 isolated api_s) / $(per1000 isolated worker_s) / $(fmt0 "$(per1000 isolated cmds)") (extrapolated) |

An isolated job bills the worker about \`IDLE_TIMEOUT\` (the drain waits
that long for more work after its job) plus its start-up: lower
\`IDLE_TIMEOUT\` where jobs come alone.

**Latency from zero.** \`POST /v1/jobs\` to the job's first take (its
\`started\` stamp, Redis clock, same host), through Cloud Tasks (the fake
dispatches at once; the real one adds its own delay).

| | median | max |
|---|---|---|
| worker service at zero: POST → first take | $zero_p50 ms | $zero_max ms |
| an instance kept (frozen): POST → first take | $kept_p50 ms | $kept_max ms |
| extra latency from zero (the two medians) | $extra_ms ms | |
| from zero: the platform starting the process → first take | $spawn_p50 ms | $spawn_max ms |
| of which the model's cold start (process start → \`/healthz\` answered; mean) | $model_cold_ms ms | |
| bare launch of \`wakeq-worker --version\` (fork, exec, exit; spawnloop, p50 of 21) | $bare_ms ms | |

| target | measured | target | met |
|---|---|---|---|
| a job posted to a sleeping system starts after the platform started the process | $spawn_p50 ms (median) | ≤ 50 ms | $(met "$spawn_p50" 50) |

Every tick and job phase:

\`\`\`
$(sed 's/^/warm tick: /' "$T/warm" | head -5)
$(sed 's/^/cold tick: /' "$T/cold")
$(cat "$T/jobs")
$(cat "$T/detail")
\`\`\`
<!-- /bench:cloudrun -->
EOF
)
printf '%s\n' "$section" >"$T/section"
bench_write cloudrun "$T/section"
