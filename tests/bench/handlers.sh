#!/usr/bin/env bash
# handlers.sh - your own code as jobs (issue 9): jobs/s and per-job
# overhead of exec handlers (/bin/true, a Python one-shot) and of a
# persistent Python handler, against the same work run by RQ's worker
# (python3-rq from Debian) and a BullMQ worker (npm) on the same machine
# in the same run, and against the bare fork+exec of the same programs.
#
#   tests/bench/handlers.sh                    figures into docs/BENCHMARKS.md
#   NOWRITE=1 RUNS=1 N_TRUE=200 N_PY=20 N_PERSIST=2000 N_PEER=200 \
#       N_PEER_TRUE=100 N_RQ_FORK=50 tests/bench/handlers.sh
#                                              a quick look, nothing written
#   PEERS= NOWRITE=1 tests/bench/handlers.sh    wakeq and the bare baseline only
#
# Every run pre-enqueues N jobs on a local redis-server, then one worker
# process drains them; jobs/s = N / (first job started -> last job
# finished), from each system's own job timestamps (wakeq: Redis TIME
# stamps; RQ: started_at / ended_at; BullMQ: first processor call -> last
# "completed" event, in the worker). ms/job is the inverse at concurrency
# 1 (one job at a time, the like-for-like per-job cost). The bare
# baseline (tests/bench/spawnloop.c, libc alone) forks, execs the same
# program with the same payload on a stdin pipe, reads its stdout and
# waits, N times in a row; exec overhead = wakeq ms/job - bare ms/job.
# Runs are interleaved (RUNS rounds of every measurement); medians.
set -eu
. "$(dirname "$0")/../lib/bench.sh"

RUNS=${RUNS:-3}
N_TRUE=${N_TRUE:-1000}        # wakeq and bare /bin/true runs
N_PY=${N_PY:-60}              # Python one-shot jobs per run (every system)
N_PERSIST=${N_PERSIST:-10000} # persistent jobs per run (at most 10,000:
                              # the done set keeps that many job hashes)
N_PEER=${N_PEER:-1000}        # RQ SimpleWorker / BullMQ trivial jobs per run
N_PEER_TRUE=${N_PEER_TRUE:-300} # BullMQ /bin/true jobs per run
N_RQ_FORK=${N_RQ_FORK:-150}   # jobs per run of RQ's forking Worker (~25 ms
                              # each: a fork of the work horse per job)
PEERS=${PEERS-rq bullmq}       # peers to run ("" = wakeq and bare only)
PY=/usr/bin/python3
HD=$TOP/tests/bench/handlers

WORKER=$BIN/wakeq-worker
TOOL=$BIN/tests/tools/bench_handlers
SPAWN=$BIN/tests/bench/spawnloop
bench_need "$WORKER" "$TOOL" "$SPAWN" "$FREEPORT" -- jq
[ -x "$PY" ] || { echo "handlers.sh: $PY missing" >&2; exit 1; }

t_tmpdir
log() { echo "# $*" >&2; }
mkdir -p "$T/bin" "$T/work"
cp "$WORKER" "$T/bin/wakeq-worker" # a rebuild meanwhile cannot mix builds
WORKER=$T/bin/wakeq-worker
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $load0"
start_redis
redis_version=$(rcli info server | awk -F: '/^redis_version:/ {print $2}' | tr -d '\r')

# ---- peers: RQ from Debian, BullMQ from npm (installed once) ---------------
rq_ready
[[ " $PEERS " == *" rq "* ]] || RQ_OK=0 RQ_WHY="left out (PEERS)"
if [[ " $PEERS " != *" bullmq "* ]]; then
	BULL_OK=0 BULL_WHY="left out (PEERS)"
else
	bullmq_ready
fi

# ---- wakeq ---------------------------------------------------------------------
cat >"$T/handlers.json" <<EOF
{
  "handlers": {
    "b.true": {"command": ["/bin/true"]},
    "b.py": {"command": ["$PY", "$HD/oneshot.py"]},
    "b.persist": {"command": ["$PY", "$HD/persist.py"], "persistent": true}
  }
}
EOF

# wakeq_run LABEL TYPE N CONC: one drain of N pre-enqueued jobs.
wakeq_run() {
	local label=$1 type=$2 n=$3 conc=$4 port pid line
	rcli flushall >/dev/null
	"$TOOL" enqueue "$REDIS_URL" bench "$type" "$n" "$T/ids"
	port=$($FREEPORT)
	env PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" QUEUES=bench \
		CONCURRENCY="$conc" IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false LOG_LEVEL=warn \
		DATABASE_URL= HANDLERS_FILE="$T/handlers.json" TMPDIR="$T/work" \
		"$WORKER" >>"$T/worker.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 500); do
		curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
		sleep 0.02
	done
	curl -fs -X POST "http://127.0.0.1:$port/wake" >/dev/null
	kill_wait "$pid"
	line=$("$TOOL" span "$REDIS_URL" bench "$T/ids") ||
		{ echo "handlers.sh: $label: not every job was done" >&2; tail -20 "$T/worker.log" >&2; exit 1; }
	echo "$label conc=$conc n=$n $line" | tee -a "$T/results" >&2
}

# bare_run LABEL N PROG...: the fork+exec baseline.
bare_run() {
	local label=$1 n=$2 line
	shift 2
	line=$("$SPAWN" "$n" '{"n":1}' "$@")
	echo "$label $line" | tee -a "$T/results" >&2
}

rq_run() { # rq_run LABEL FUNC N fork|simple
	local line
	rcli flushall >/dev/null
	# (no __pycache__ left in the source tree)
	line=$(cd "$HD" && PYTHONDONTWRITEBYTECODE=1 "$PY" rq_bench.py "$REDIS_URL" "$2" "$3" "$4")
	echo "$1 conc=1 n=$3 $line" | tee -a "$T/results" >&2
}

bull_run() { # bull_run LABEL KIND N CONC
	local line
	rcli flushall >/dev/null
	line=$(NODE_PATH=$NPM_DIR/node_modules node "$HD/bullmq_bench.js" "$REDIS_PORT" "$2" "$3" "$4")
	echo "$1 conc=$4 n=$3 $line" | tee -a "$T/results" >&2
}

for r in $(seq 1 "$RUNS"); do
	log "round $r/$RUNS"
	bare_run bare-true "$N_TRUE" /bin/true
	wakeq_run wakeq-true b.true "$N_TRUE" 1
	bare_run bare-py "$N_PY" "$PY" "$HD/oneshot.py"
	wakeq_run wakeq-py b.py "$N_PY" 1
	wakeq_run wakeq-persist-c1 b.persist "$N_PERSIST" 1
	wakeq_run wakeq-persist-c2 b.persist "$N_PERSIST" 2
	if [ "$RQ_OK" = 1 ]; then
		rq_run rq-true run_true "$N_RQ_FORK" fork
		rq_run rq-py run_oneshot "$N_PY" fork
		rq_run rq-trivial-fork trivial "$N_RQ_FORK" fork
		rq_run rq-trivial-simple trivial "$N_PEER" simple
	fi
	if [ "$BULL_OK" = 1 ]; then
		bull_run bull-true true "$N_PEER_TRUE" 1
		bull_run bull-py oneshot "$N_PY" 1
		bull_run bull-trivial-c1 trivial "$N_PEER" 1
		bull_run bull-trivial-c2 trivial "$N_PEER" 2
	fi
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at end: $load1"

# ---- figures ------------------------------------------------------------------
# val LABEL KEY: the median of KEY= over the LABEL lines ("" when none).
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
val() { grep -E "^$1 " "$T/results" | tr ' ' '\n' | sed -n "s/^$2=//p" | median; }
jps() { local v; v=$(val "$1" tput); [ -n "$v" ] && printf '%.0f' "$v" || echo "–"; }
# ms/job of a concurrency-1 run: 1000 / tput; of a bare run: its mean.
msjob() { local v; v=$(val "$1" tput); [ -n "$v" ] && awk -v t="$v" 'BEGIN {printf "%.3f", 1000 / t}' || echo "–"; }
bare_ms() { awk -v u="$(val "$1" per_us_mean)" 'BEGIN {printf "%.3f", u / 1000}'; }
bare_tput() { awk -v u="$(val "$1" per_us_mean)" 'BEGIN {printf "%.0f", 1e6 / u}'; }
# over WAKEQ_LABEL BARE_LABEL: the median over rounds of (wakeq ms/job -
# bare ms/job) of the same round, so a load that drifts between rounds
# cancels out.
over() {
	paste <(grep -E "^$1 " "$T/results" | tr ' ' '\n' | sed -n 's/^tput=//p') \
	      <(grep -E "^$2 " "$T/results" | tr ' ' '\n' | sed -n 's/^per_us_mean=//p') |
		awk '{printf "%.3f\n", 1000 / $1 - $2 / 1000}' | median | xargs printf '%.3f'
}
hi() { printf '%s\n' "$@" | grep -v '^–$' | sort -g | tail -1; }
met() { awk -v m="$1" -v t="$2" -v d="$3" 'BEGIN {print ((d == "ge" && m >= t) || (d == "le" && m <= t)) ? "yes" : "**no**"}'; }
# ahead WAKEQ PEER...: "yes" when WAKEQ's jobs/s beats every peer figure given.
ahead() {
	local w=$1 best
	shift
	best=$(hi "$@")
	[ -n "$best" ] || { echo "–"; return; }
	awk -v w="$w" -v b="$best" 'BEGIN {print (w > b) ? "yes" : "**no**"}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
peer() { # peer OK WHY VALUE: the figure, or why it is missing
	if [ "$1" = 1 ]; then echo "$3"; else echo "not run: $2"; fi
}

t_true=$(jps wakeq-true) t_py=$(jps wakeq-py)
t_p1=$(jps wakeq-persist-c1) t_p2=$(jps wakeq-persist-c2)
ms_true=$(msjob wakeq-true) ms_py=$(msjob wakeq-py) ms_p1=$(msjob wakeq-persist-c1)
bms_true=$(bare_ms bare-true) bms_py=$(bare_ms bare-py)
over_true=$(over wakeq-true bare-true) over_py=$(over wakeq-py bare-py)
persist_best=$(hi "$t_p1" "$t_p2")
rq_true=$(jps rq-true) rq_py=$(jps rq-py) rq_tf=$(jps rq-trivial-fork) rq_ts=$(jps rq-trivial-simple)
bu_true=$(jps bull-true) bu_py=$(jps bull-py) bu_t1=$(jps bull-trivial-c1) bu_t2=$(jps bull-trivial-c2)
peers_true=$(ahead "$t_true" "$rq_true" "$bu_true")
peers_py=$(ahead "$t_py" "$rq_py" "$bu_py")
peers_persist=$(ahead "$persist_best" "$rq_tf" "$rq_ts" "$bu_t1" "$bu_t2")
RQ() { peer "$RQ_OK" "$RQ_WHY" "$1"; }
BU() { peer "$BULL_OK" "$BULL_WHY" "$1"; }

section=$(cat <<EOF
<!-- bench:handlers -->
## Handlers: exec and persistent vs RQ and BullMQ

$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),
redis-server $redis_version (one local server, loopback TCP), Python $("$PY" -c 'import platform; print(platform.python_version())'),
RQ $RQ_VERSION (Debian python3-rq), BullMQ $BULLMQ_VERSION with ioredis $IOREDIS_VERSION on Node $(node --version 2>/dev/null || echo -).
\`tests/bench/handlers.sh\` (RUNS=$RUNS interleaved rounds, medians; N: /bin/true
$N_TRUE (BullMQ $N_PEER_TRUE), Python one-shot $N_PY, persistent $N_PERSIST,
RQ's forking Worker $N_RQ_FORK, RQ SimpleWorker and BullMQ trivial $N_PEER). Load average at
start / end: $load0 / $load1 — on a shared machine the figures carry that
noise.

One worker process each, jobs pre-enqueued; jobs/s from the first job's
start to the last one's end, ms/job = 1 / that at concurrency 1. The
work: \`/bin/true\` and \`oneshot.py\` (payload on stdin, \`{"n":N}\` on stdout)
spawned per job by each system (wakeq: an \`exec\` handler; RQ and BullMQ:
a job function that spawns it); a trivial handler returning \`{"n":N}\`
(wakeq: \`persist.py\`, a persistent handler; RQ: a Python function; BullMQ:
a JS processor). RQ's default Worker forks a work horse for every job;
SimpleWorker runs jobs in its own process. Exec overhead: the median over
rounds of wakeq's ms/job minus the bare ms/job of the same round. The
Python one-shot overhead
is the difference of two 20–40 ms figures: the interpreter's own start-up
varies by more than the overhead, so read it with the \`/bin/true\` row.

| work, jobs/s (ms/job) | bare fork+exec | wakeq | RQ Worker | RQ SimpleWorker | BullMQ |
|---|---|---|---|---|---|
| \`/bin/true\` per job | $(bare_tput bare-true) ($bms_true) | $t_true ($ms_true) | $(RQ "$rq_true ($(msjob rq-true))") | – | $(BU "$bu_true ($(msjob bull-true))") |
| Python one-shot per job | $(bare_tput bare-py) ($bms_py) | $t_py ($ms_py) | $(RQ "$rq_py ($(msjob rq-py))") | – | $(BU "$bu_py ($(msjob bull-py))") |
| trivial handler, C=1 | – | $t_p1 ($ms_p1) persistent Python | $(RQ "$rq_tf ($(msjob rq-trivial-fork))") | $(RQ "$rq_ts ($(msjob rq-trivial-simple))") | $(BU "$bu_t1 ($(msjob bull-trivial-c1))") JS |
| trivial handler, C=2 | – | $t_p2 persistent Python | – | – | $(BU "$bu_t2") JS |

| target | measured | target | ratio | met |
|---|---|---|---|---|
| exec overhead per job over bare fork+exec, \`/bin/true\`, ms | $over_true | ≤ 1.5 | $(ratio "$over_true" 1.5) | $(met "$over_true" 1.5 le) |
| exec overhead per job over bare fork+exec, Python one-shot, ms | $over_py | ≤ 1.5 | $(ratio "$over_py" 1.5) | $(met "$over_py" 1.5 le) |
| persistent Python handler, jobs/s | $persist_best (best of C=1, C=2) | ≥ 10,000 | $(ratio "$persist_best" 10000) | $(met "$persist_best" 10000 ge) |
| ahead of RQ and BullMQ: \`/bin/true\` | $t_true vs $(hi "$rq_true" "$bu_true") | > both | – | $peers_true |
| ahead of RQ and BullMQ: Python one-shot | $t_py vs $(hi "$rq_py" "$bu_py") | > both | – | $peers_py |
| ahead of RQ and BullMQ: trivial handler | $persist_best vs $(hi "$rq_tf" "$rq_ts" "$bu_t1" "$bu_t2") | > every | – | $peers_persist |

Every run (\`span_s\`: first start → last end; \`run_us_p50\`: wakeq's
started → finished per job, where started is stamped when the job's batch
(up to 64) is taken, so at C=1 it includes the wait inside the worker;
bare: \`per_us_mean\` of one fork + exec + stdin + stdout + wait):

\`\`\`
$(cat "$T/results")
\`\`\`
<!-- /bench:handlers -->
EOF
)

printf '%s\n' "$section" >"$T/section"
bench_write handlers "$T/section"
