#!/usr/bin/env bash
# core.sh - the core figures of issue 2 (queue engine + worker), measured
# the way the BullMQ / RQ reference was: one local redis-server 7.0 on a
# free loopback port, no-op jobs, the real build/wakeq-worker process.
#
#   tests/bench/core.sh                        figures into docs/BENCHMARKS.md
#   NOWRITE=1 RUNS=1 N=20000 IDLE_WINDOW=10 RQ_N=2000 tests/bench/core.sh
#                                             quick look (RQ's SimpleWorker
#                                             drains ~300 jobs/s here: at the
#                                             default N=100,000, ~6 min a run)
#   PARTS="drain cold" tests/bench/core.sh    only some parts (prints them,
#                                             writes nothing)
#
# Figures (each explained in the section it writes):
#   drain throughput, C=1 and C=32, RUNS runs of N pre-enqueued jobs,
#   Redis CPU / commands / round trips per job, worker CPU and peak RSS;
#   enqueue rate one at a time and in batches of 1000 (bench_core);
#   Redis commands per minute of an awake idle worker and after it exited
#   (on a second redis-server, in the background while the rest runs);
#   the bare-Redis limit (part "bare", issue 14): the same N jobs through
#   the cheapest structure that keeps a record per job (bench_bare drain:
#   pipelined, a write per job at enqueue and at settle, a pop a batch),
#   and the PING rate of one connection, one at a time; the section
#   gives wakeq's drain and one-at-a-time enqueue as % of them;
#   cold start (process launch -> handler start, via /wake);
#   warm latency (enqueue -> handler start on an idle awake worker);
#   the cost of the queue controls (part "controls", a section of its
#   own): drain throughput and Redis CPU per job with no control
#   configured, with rate-limited groups and with concurrency-capped
#   groups, and the same drain by the worker of the commit before the
#   controls landed (CTL_BASE, built in the temp dir); `PARTS=controls`
#   measures and writes that section alone.
# The peers, BullMQ (npm) and RQ (Debian python3-rq), are measured in the
# same run on the same redis-server with the same job counts, each with
# the part of the same name (drain, enqueue, idle; tests/lib/peers.sh,
# PEERS= leaves them out); the table gives wakeq / the best peer and the
# issue-14 targets against BullMQ.
set -eu
. "$(dirname "$0")/../lib/bench.sh"

N=${N:-100000}                 # jobs per drain run
RUNS=${RUNS:-3}                # drain runs per concurrency (median)
CONCS=${CONCS:-"1 32"}
DRAIN_IDLE=${DRAIN_IDLE:-0.5}  # IDLE_TIMEOUT of drain runs (subtracted)
BATCHES=${BATCHES:-"16 256 1000"} # extra BATCH values tried at C=32, one run each
ENQ_ONE=${ENQ_ONE:-20000}      # jobs per one-at-a-time enqueue run
ENQ_MANY=${ENQ_MANY:-200000}   # jobs per batched enqueue run
ENQ_RUNS=${ENQ_RUNS:-3}
IDLE_WINDOW=${IDLE_WINDOW:-60} # seconds of idle measured
AFTER_WINDOW=${AFTER_WINDOW:-20} # seconds measured after the worker exited
COLD_RUNS=${COLD_RUNS:-11}
LAT_N=${LAT_N:-2000}
LAT_PACE_US=${LAT_PACE_US:-3000}
CTL_N=${CTL_N:-50000}          # jobs per controls drain run
CTL_RUNS=${CTL_RUNS:-3}        # runs of each controls case (interleaved; median)
CTL_CONC=${CTL_CONC:-32}
CTL_GROUPS=${CTL_GROUPS:-10}   # groups of the grouped cases
# the commit before the controls merge (its first parent), unless given
CTL_BASE=${CTL_BASE:-$(git log --merges --grep="^Merge branch 'controls'" -1 --format=%H 2>/dev/null | sed -n 's/.$/&^1/p')}
BARE_BATCH=${BARE_BATCH:-64}   # jobs a pipeline of the bare-Redis limit (wakeq's BATCH)
BARE_ENQ_BATCH=1000            # the bare enqueue's pipeline: the batched enqueue's call
ALL_PARTS="drain enqueue bare cold latency idle controls"
PARTS=${PARTS:-$ALL_PARTS}
PARTIAL=0
[ "$PARTS" = "$ALL_PARTS" ] || PARTIAL=1 # the core section wants every part
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

WORKER=$BIN/wakeq-worker
TOOL=$BIN/tests/tools/bench_core
BARE=$BIN/tests/tools/bench_bare
bench_need "$WORKER" "$TOOL" "$BARE" "$FREEPORT" -- jq
HZ=$(getconf CLK_TCK)

t_tmpdir
log() { echo "# $*" >&2; }
# A snapshot of the binary, so a rebuild in the shared checkout during the
# run cannot mix two builds (the media plugin beside it, if any).
mkdir -p "$T/bin"
cp "$WORKER" "$T/bin/wakeq-worker"
[ ! -f "$BIN/wakeq-media.so" ] || cp "$BIN/wakeq-media.so" "$T/bin/"
WORKER=$T/bin/wakeq-worker
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $load0"

# Two servers: A for everything timed, B for the idle worker (background).
start_redis
A_PORT=$REDIS_PORT A_URL=$REDIS_URL A_PID=$REDIS_PID
start_redis
B_PORT=$REDIS_PORT B_URL=$REDIS_URL
ra() { redis-cli -p "$A_PORT" "$@"; }
rb() { redis-cli -p "$B_PORT" "$@"; }
redis_version=$(ra info server | awk -F: '/^redis_version:/ {print $2}' | tr -d '\r')

# start_w NAME URL VAR=VALUE...: a worker on a free port; sets NAME_PID,
# NAME_PORT. Killed on exit.
start_w() {
	local name=$1 url=$2 port pid i
	shift 2
	port=$($FREEPORT)
	env PORT="$port" HOST=127.0.0.1 REDIS_URL="$url" LOG_LEVEL=warn \
		DATABASE_URL= "$@" "$WORKER" >>"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	eval "${name}_PID=$pid ${name}_PORT=$port"
	for i in $(seq 1 500); do
		curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	echo "core.sh: worker $name did not start" >&2
	cat "$T/$name.log" >&2
	exit 1
}

# cpu_s INFO_CPU_TEXT: used_cpu_sys + used_cpu_user, seconds.
redis_cpu() {
	redis-cli -p "$1" info cpu | tr -d '\r' |
		awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f\n", s}'
}
# cmdstats PORT: "name calls usec" per command, our own INFO/CONFIG and the
# first-job watcher's HGETALL left out (wakeq sends no HGETALL in a drain).
cmdstats() {
	redis-cli -p "$1" info commandstats | tr -d '\r' |
		sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2 \3/p' |
		grep -v -E '^(info|config\|.*|hgetall) ' || true
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# busy_ticks: "busy idle" ticks of all CPUs (busy: user nice system irq
# softirq steal; idle: idle iowait).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9 "_" $5 + $6}' /proc/stat; }
# runq_ns PID: nanoseconds the process's threads waited runnable for a CPU.
runq_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {print s + 0}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
fmt0() { printf "%'.0f" "$1" 2>/dev/null || printf "%.0f" "$1"; }
. tests/lib/peers.sh

# ---- idle worker, in the background on server B --------------------------
idle_bench() {
	local out=$T/idle.out
	"$TOOL" enqueue "$B_URL" idle 1 1 >/dev/null
	curl -fs -X POST "http://127.0.0.1:$IW_PORT/wake?wait=0" >/dev/null
	sleep 3 # the job runs at once; then the drain blocks on the markers
	[ "$(rb zcard 'wakeq:{idle}:done')" = 1 ] ||
		{ echo "idle: job not done" >"$out"; return; }
	rb config resetstat >/dev/null
	sleep "$IDLE_WINDOW"
	cmdstats "$B_PORT" >"$T/idle.cmds"
	# The worker exits IDLE_TIMEOUT after the job: wait for it, then
	# count again with no worker at all.
	local i
	for i in $(seq 1 $((IDLE_WINDOW + 60))); do
		kill -0 "$IW_PID" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$IW_PID" 2>/dev/null; then
		echo "idle: worker did not exit" >"$out"
		return
	fi
	rb config resetstat >/dev/null
	sleep "$AFTER_WINDOW"
	cmdstats "$B_PORT" >"$T/after.cmds"
	echo ok >"$out"
}
if part idle; then
	start_w IW "$B_URL" QUEUES=idle IDLE_TIMEOUT=$((IDLE_WINDOW + 10)) EXIT_ON_IDLE=true
	idle_bench &
	IDLE_BG=$!
	log "idle worker measured in the background (${IDLE_WINDOW} s + exit + ${AFTER_WINDOW} s)"
	peers_idle_start
fi

# ---- drain throughput ----------------------------------------------------
# drain_run LABEL CONC [VAR=VALUE...]: one run; appends a line to
# ${DRAIN_OUT:-$T/drain}. DRAIN_SETUP: a command run after the flush (the
# queue's settings); DRAIN_GROUPS: the jobs spread over that many groups.
drain_run() {
	local label=$1 conc=$2 groups=${DRAIN_GROUPS:-0}
	shift 2
	ra flushall >/dev/null
	[ -z "${DRAIN_SETUP:-}" ] || eval "$DRAIN_SETUP"
	"$TOOL" enqueue "$A_URL" bench "$N" 1000 "$groups" >/dev/null
	start_w DW "$A_URL" QUEUES=bench CONCURRENCY="$conc" IDLE_TIMEOUT="$DRAIN_IDLE" \
		EXIT_ON_IDLE=false "$@"
	local first r0 w0 k0 m0 body r1 w1 k1 m1 last st fin hwm b0 b1 q0 q1 x0 x1
	# the first job taken: pending's first, or the first group's (the
	# first group joined is the rotation's tail, visited first)
	if [ "$groups" -gt 0 ]; then
		first=$(ra zrange 'wakeq:{bench}:gpend:g0' 0 0)
	else
		first=$(ra zrange 'wakeq:{bench}:pending' 0 0)
	fi
	ra config resetstat >/dev/null
	r0=$(redis_cpu "$A_PORT"); k0=$(proc_ticks "$A_PID"); w0=$(proc_ticks "$DW_PID")
	b0=$(busy_ticks); q0=$(runq_ns "$A_PID"); x0=$(runq_ns "$DW_PID")
	# The first job's hash is gone by the end (the done set keeps the
	# last 10,000): a watcher reads its start as it happens.
	"$TOOL" first "$A_URL" bench "$first" 10000 >"$T/first" &
	local watch=$!
	m0=$(date +%s%6N)
	body=$(curl -fs -X POST "http://127.0.0.1:$DW_PORT/wake")
	m1=$(date +%s%6N)
	wait "$watch" || { echo "core.sh: first job not seen" >&2; exit 1; }
	r1=$(redis_cpu "$A_PORT"); k1=$(proc_ticks "$A_PID"); w1=$(proc_ticks "$DW_PID")
	b1=$(busy_ticks); q1=$(runq_ns "$A_PID"); x1=$(runq_ns "$DW_PID")
	cmdstats "$A_PORT" >"$T/cmds.$label"
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DW_PID/status")
	kill_wait "$DW_PID"
	last=$(ra zrevrange 'wakeq:{bench}:done' 0 0)
	st=$(cat "$T/first")
	fin=$(ra hget "wakeq:{bench}:job:$last" finished)
	local jobs secs
	jobs=$(jq -r .drain.done <<<"$body")
	secs=$(jq -r .drain.seconds <<<"$body")
	[ "$jobs" = "$N" ] || { echo "core.sh: drain did $jobs of $N jobs" >&2; exit 1; }
	awk -v label="$label" -v conc="$conc" -v n="$N" -v st="$st" -v fin="$fin" \
	    -v secs="$secs" -v idle="$DRAIN_IDLE" -v r0="$r0" -v r1="$r1" \
	    -v k0="$k0" -v k1="$k1" -v w0="$w0" -v w1="$w1" -v hz="$HZ" \
	    -v hwm="$hwm" -v m0="$m0" -v m1="$m1" -v b0="$b0" -v b1="$b1" \
	    -v q0="$q0" -v q1="$q1" -v x0="$x0" -v x1="$x1" '
		{ calls += $2; if ($1 ~ /^(evalsha|eval|blpop|ping|select|auth|hello|script\|.*|client\|.*)$/) rt += $2
		  if ($1 == "evalsha" || $1 == "eval") { scripts += $2; script_us += $3 } }
		END {
			span = (fin - st) / 1e6
			printf "%s conc=%d jobs=%d span_s=%.3f tput=%.0f wake_s=%.3f tput_wake=%.0f", \
				label, conc, n, span, n / span, secs - idle, n / (secs - idle)
			printf " redis_cpu_s=%.3f redis_us_job=%.2f redis_util=%.2f", \
				r1 - r0, (r1 - r0) * 1e6 / n, (k1 - k0) / hz / span
			printf " worker_cpu_s=%.2f worker_us_job=%.2f worker_util=%.2f", \
				(w1 - w0) / hz, (w1 - w0) / hz * 1e6 / n, (w1 - w0) / hz / span
			printf " cmds_job=%.2f rt_job=%.4f jobs_per_script=%.1f script_us_job=%.2f hwm_kib=%d", \
				calls / n, rt / n, n / scripts, script_us / n, hwm
			wall = (m1 - m0) / 1e6
			split(b0, B0, "_"); split(b1, B1, "_")
			busy = B1[1] - B0[1]; idl = B1[2] - B0[2]
			printf " machine_busy=%.2f redis_runq_s=%.3f worker_runq_s=%.3f\n", \
				busy / (busy + idl), (q1 - q0) / 1e9, (x1 - x0) / 1e9
		}' "$T/cmds.$label" | tee -a "${DRAIN_OUT:-$T/drain}" >&2
}

if part drain; then
	for c in $CONCS; do
		for i in $(seq 1 "$RUNS"); do
			log "drain C=$c run $i/$RUNS ($N jobs)"
			drain_run "c$c-run$i" "$c"
		done
	done
	for b in $BATCHES; do
		log "drain C=32 BATCH=$b"
		drain_run "c32-batch$b" 32 BATCH="$b"
	done
fi

# ---- enqueue -------------------------------------------------------------
# enq_run KIND N BATCH: appends "KIND rate redis_us_job client_us_job".
enq_run() {
	local kind=$1 n=$2 batch=$3 r0 r1 line
	ra flushall >/dev/null
	r0=$(redis_cpu "$A_PORT")
	line=$(/usr/bin/time -f '%U %S' -o "$T/time" "$TOOL" enqueue "$A_URL" enq "$n" "$batch")
	r1=$(redis_cpu "$A_PORT")
	echo "$kind $line $r0 $r1 $(cat "$T/time")" | awk '{printf "%s n=%d rate=%.0f redis_us_job=%.2f client_us_job=%.2f\n", \
		$1, $2, $4, ($6 - $5) * 1e6 / $2, ($7 + $8) * 1e6 / $2}' | tee -a "$T/enq" >&2
}
if part enqueue; then
	for i in $(seq 1 "$ENQ_RUNS"); do
		log "enqueue run $i/$ENQ_RUNS"
		enq_run one "$ENQ_ONE" 1
		enq_run batch "$ENQ_MANY" 1000
	done
	ra flushall >/dev/null
fi

# ---- the bare-Redis limit ------------------------------------------------
if part bare; then
	for i in $(seq 1 "$RUNS"); do
		log "bare-Redis limit run $i/$RUNS ($N jobs, $BARE_BATCH a pipeline; $ENQ_ONE PINGs)"
		"$BARE" drain "$A_PORT" "$N" "$BARE_BATCH" | tee -a "$T/bare" >&2
		# the enqueue side at the batched enqueue's 1,000 a call ("bareenq")
		"$BARE" drain "$A_PORT" "$N" "$BARE_ENQ_BATCH" | sed 's/^bare /bareenq /' | tee -a "$T/bare" >&2
		"$BARE" ping "$A_PORT" "$ENQ_ONE" | tee -a "$T/bare" >&2
	done
	if part drain; then
		b=$(grep '^bare ' "$T/bare" | tr ' ' '\n' | sed -n 's/^drain_rate=//p' | median)
		for c in $CONCS; do
			w=$(grep "^c$c-run" "$T/drain" | tr ' ' '\n' | sed -n 's/^tput=//p' | median)
			log "wakeq drain C=$c: $w jobs/s = $(awk -v w="$w" -v b="$b" 'BEGIN {printf "%.1f", w * 100 / b}') % of the bare-Redis limit ($b)"
		done
	fi
fi

# ---- cold start ----------------------------------------------------------
if part cold; then
	log "cold start x$COLD_RUNS"
	"$TOOL" cold "$A_URL" cold "$COLD_RUNS" "$WORKER" >"$T/cold"
	cat "$T/cold" >&2
fi

# ---- warm latency --------------------------------------------------------
if part latency; then
	log "warm latency: $LAT_N jobs, one every $LAT_PACE_US us"
	ra flushall >/dev/null
	start_w LW "$A_URL" QUEUES=lat IDLE_TIMEOUT=120 EXIT_ON_IDLE=true
	# a job to run, so the wake starts a drain that then stays awake
	# (a wake finding nothing due answers at once and the worker retires)
	"$TOOL" enqueue "$A_URL" lat 1 1 >/dev/null
	curl -fs -X POST "http://127.0.0.1:$LW_PORT/wake?wait=0" >/dev/null
	sleep 0.5
	"$TOOL" latency "$A_URL" lat "$LAT_N" "$LAT_PACE_US" >"$T/lat"
	cat "$T/lat" >&2
	kill_wait "$LW_PID"
fi

# ---- the peers: BullMQ and RQ, same server, same job counts -------------------
part drain || part enqueue && peers_run

# ---- the cost of the controls ----------------------------------------------
# Cases, each CTL_RUNS drains of CTL_N noop jobs at C=CTL_CONC, interleaved
# so the machine's load falls on all alike:
#   base   no control, the worker built from CTL_BASE (before the controls)
#   none   no control configured, this build
#   rate   CTL_GROUPS groups, group_rate_max 1,000,000 a second (never
#          binding: the cost of the buckets and the rotation, not a wait)
#   cap    CTL_GROUPS groups, group_concurrency 100,000 (never binding)
# The jobs are enqueued by this build's script in every case (not timed).
ctl_base_worker() {
	local src=$T/base
	[ -n "$CTL_BASE" ] || { echo "no controls merge found in git log"; return 1; }
	mkdir -p "$src"
	git archive "$CTL_BASE" | tar -x -C "$src" || { echo "git archive $CTL_BASE failed"; return 1; }
	make -C "$src" -j2 BUILD=build build/wakeq-worker >"$T/base-build.log" 2>&1 ||
		{ echo "the build of $CTL_BASE failed ($(tail -3 "$T/base-build.log" | tr '\n' ' '))"; return 1; }
	cp "$src/build/wakeq-worker" "$T/bin/wakeq-worker-base"
}
if part controls; then
	ctl_cases="none rate cap"
	base_note=
	log "controls: building the worker of $CTL_BASE (the commit before the controls)"
	if base_err=$(ctl_base_worker); then
		ctl_cases="base $ctl_cases"
		base_sha=$(git rev-parse --short "$CTL_BASE")
	else
		base_note="The pre-controls baseline was not measured: $base_err."
		log "$base_note"
	fi
	set_ctl() { REDIS_URL=$A_URL "$BIN/wakeq" settings bench "$@" >/dev/null; }
	for i in $(seq 1 "$CTL_RUNS"); do
		for c in $ctl_cases; do
			log "controls: $c run $i/$CTL_RUNS ($CTL_N jobs, C=$CTL_CONC)"
			w=$WORKER setup= groups=0
			case $c in
			base) w=$T/bin/wakeq-worker-base ;;
			rate) groups=$CTL_GROUPS setup="set_ctl group_rate_max=1000000 group_rate_period_s=1" ;;
			cap) groups=$CTL_GROUPS setup="set_ctl group_concurrency=100000" ;;
			esac
			WORKER=$w N=$CTL_N DRAIN_OUT=$T/ctl DRAIN_SETUP=$setup DRAIN_GROUPS=$groups \
				drain_run "$c-run$i" "$CTL_CONC"
		done
	done
	cfield() { grep -E "^$1-run" "$T/ctl" | tr ' ' '\n' | sed -n "s/^$2=//p" | median; }
	declare -A CT
	for c in $ctl_cases; do
		for k in tput redis_us_job cmds_job; do CT[$c.$k]=$(cfield "$c" "$k"); done
	done
	pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f %%", (a / b - 1) * 100}'; }
	ctl_row() { # CASE LABEL
		local vs="–"
		[ "$1" = none ] || vs="$(pct "${CT[$1.tput]}" "${CT[none.tput]}") / $(pct "${CT[$1.redis_us_job]}" "${CT[none.redis_us_job]}")"
		echo "| $2 | $(fmt0 "${CT[$1.tput]}") | ${CT[$1.redis_us_job]} | ${CT[$1.cmds_job]} | $vs |"
	}
	base_row=
	verdict=$base_note
	if [ -n "${CT[base.tput]:-}" ]; then
		within=$(awk -v t="${CT[none.tput]}" -v tb="${CT[base.tput]}" -v r="${CT[none.redis_us_job]}" \
			-v rb="${CT[base.redis_us_job]}" 'BEGIN {print (t >= tb * 0.95 && r <= rb * 1.05) ? "yes" : "**no**"}')
		base_row="| no control, the worker of $base_sha (before the controls) | $(fmt0 "${CT[base.tput]}") | ${CT[base.redis_us_job]} | ${CT[base.cmds_job]} | $(pct "${CT[base.tput]}" "${CT[none.tput]}") / $(pct "${CT[base.redis_us_job]}" "${CT[none.redis_us_job]}") |"
		verdict="No control configured, against the worker before the controls ($base_sha): throughput $(pct "${CT[none.tput]}" "${CT[base.tput]}"), Redis CPU per job $(pct "${CT[none.redis_us_job]}" "${CT[base.redis_us_job]}"). Within 5 % (the target): $within."
	fi
	{
		echo "<!-- bench:controls -->"
		echo "## The cost of the queue controls"
		echo
		echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
		echo "redis-server $redis_version, \`PARTS=controls tests/bench/core.sh\` (CTL_N=$CTL_N"
		echo "noop jobs a drain, CTL_RUNS=$CTL_RUNS interleaved runs of each case, C=$CTL_CONC,"
		echo "worker defaults). Load average at start / end: $load0 / $(cut -d' ' -f1-3 /proc/loadavg)."
		echo "Medians. Redis CPU is \`used_cpu_sys + used_cpu_user\` of the test server"
		echo "over the drain divided by the jobs; commands include those the scripts"
		echo "run (INFO commandstats). The grouped cases spread the jobs over"
		echo "$CTL_GROUPS groups, with limits so high that they never hold a job back:"
		echo "what is measured is the bookkeeping (token buckets, the rotation, the"
		echo "groups' active sets), not a wait. The jobs of every case are enqueued"
		echo "(untimed) by this build's enqueue script."
		echo
		echo "| case | drain, jobs/s | Redis CPU per job, µs | Redis commands per job | vs no control (jobs/s / CPU) |"
		echo "|---|---|---|---|---|"
		[ -z "$base_row" ] || echo "$base_row"
		ctl_row none "no control configured"
		ctl_row rate "$CTL_GROUPS groups, rate-limited (group_rate_max)"
		ctl_row cap "$CTL_GROUPS groups, concurrency-capped (group_concurrency)"
		echo
		echo "$verdict"
		echo
		echo '```'
		cat "$T/ctl"
		echo '```'
		echo "<!-- /bench:controls -->"
	} >"$T/ctl_section"
	if [ "${NOWRITE:-0}" = 1 ]; then
		cat "$T/ctl_section"
	else
		bench_write controls "$T/ctl_section"
	fi
fi

# ---- idle (background) ---------------------------------------------------
if ! part idle; then
	log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi
log "waiting for the idle measurement"
wait "$IDLE_BG" || true
idle_status=$(cat "$T/idle.out" 2>/dev/null || echo "idle: no result")
[ "$idle_status" = ok ] || { echo "core.sh: $idle_status" >&2; exit 1; }
idle_calls=$(awk '{s += $2} END {print s + 0}' "$T/idle.cmds")
idle_detail=$(awk '{printf "%s%s %d", (NR > 1 ? ", " : ""), $1, $2}' "$T/idle.cmds")
after_calls=$(awk '{s += $2} END {print s + 0}' "$T/after.cmds")
idle_per_min=$(awk -v c="$idle_calls" -v w="$IDLE_WINDOW" 'BEGIN {printf "%.1f", c * 60 / w}')
log "idle: $idle_calls commands in $IDLE_WINDOW s ($idle_detail); after exit: $after_calls in $AFTER_WINDOW s"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at end: $load1"

# ---- figures -------------------------------------------------------------
# field FILE PATTERN KEY: the KEY= values of lines matching PATTERN.
field() { grep -E "$2" "$1" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
med() { field "$@" | median; }
runs() { field "$@" | paste -sd' ' | sed 's/ /, /g'; }

declare -A M
for c in $CONCS; do
	for k in tput tput_wake redis_us_job cmds_job rt_job jobs_per_script worker_util \
		 redis_util worker_us_job hwm_kib span_s; do
		M[$c.$k]=$(med "$T/drain" "^c$c-run" "$k")
	done
done
enq_one=$(med "$T/enq" '^one ' rate)
enq_many=$(med "$T/enq" '^batch ' rate)
enq_one_redis=$(med "$T/enq" '^one ' redis_us_job)
enq_one_client=$(med "$T/enq" '^one ' client_us_job)
enq_many_redis=$(med "$T/enq" '^batch ' redis_us_job)
enq_many_client=$(med "$T/enq" '^batch ' client_us_job)
cold_ms=$(awk '/^start_us/ {sub("p50=", "", $3); printf "%.1f", $3 / 1000}' "$T/cold")
cold_listen_ms=$(awk '/^listen_us/ {sub("p50=", "", $3); printf "%.1f", $3 / 1000}' "$T/cold")
cold_runs=$(awk '/^run / {sub("start_us=", "", $4); printf "%s%.1f", (NR > 1 ? ", " : ""), $4 / 1000}' "$T/cold")
lat_p50=$(awk '/^start_us/ {sub("p50=", "", $3); printf "%.3f", $3 / 1000}' "$T/lat")
lat_p99=$(awk '/^start_us/ {sub("p99=", "", $5); printf "%.3f", $5 / 1000}' "$T/lat")
done_p50=$(awk '/^done_us/ {sub("p50=", "", $3); printf "%.3f", $3 / 1000}' "$T/lat")
done_p99=$(awk '/^done_us/ {sub("p99=", "", $5); printf "%.3f", $5 / 1000}' "$T/lat")
rtt_p50=$(awk '/^enqueue_rtt_us/ {sub("p50=", "", $3); printf "%.3f", $3 / 1000}' "$T/lat")
declare -A BR # the bare-Redis limit's medians (bench_bare lines "bare …", "ping …")
for k in bare.drain_rate bare.drain_redis_us_job bare.drain_cmds_job bare.enqueue_rate \
	 bareenq.enqueue_rate bareenq.enqueue_redis_us_job ping.rate ping.p50_us; do
	BR[$k]=$(med "$T/bare" "^${k%%.*} " "${k#*.}")
done
pctof() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a * 100 / b}'; }

# Best of the two concurrencies for the headline rows that have one value.
hi() { printf '%s\n' "$@" | sort -g | tail -1; }
lo() { printf '%s\n' "$@" | sort -g | head -1; }
tput_best=$(hi "${M[1.tput]:-0}" "${M[32.tput]:-0}")
ratio() { awk -v m="$1" -v t="$2" 'BEGIN {printf "%.2f", m / t}'; }
met() { awk -v m="$1" -v t="$2" -v d="$3" 'BEGIN {print ((d == "ge" && m >= t) || (d == "le" && m <= t)) ? "yes" : "**no**"}'; }
redis_cpu_row=$(lo "${M[1.redis_us_job]}" "${M[32.redis_us_job]}")
cmds_row=$(lo "${M[1.cmds_job]}" "${M[32.cmds_job]}")
rt_row=$(hi "${M[1.rt_job]}" "${M[32.rt_job]}")
hwm_mib=$(awk -v a="${M[1.hwm_kib]}" -v b="${M[32.hwm_kib]}" 'BEGIN {printf "%.1f", (a > b ? a : b) / 1024}')
peers_figures

section=$(cat <<EOF
<!-- bench:core -->
## Core: queue engine and worker vs BullMQ and RQ

$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),
redis-server $redis_version (one local server, loopback TCP, no persistence),
\`tests/bench/core.sh\` (N=$N, RUNS=$RUNS, worker defaults: BATCH 64, lease 60 s).
Load average at start / end: $load0 / $load1 — the machine is shared,
so the figures are medians and carry that noise. The peers ran in the
same run on the same redis-server (BullMQ $BULLMQ_VERSION with ioredis $IOREDIS_VERSION on Node
$(node --version 2>/dev/null || echo -), RQ $RQ_VERSION from Debian; how, below the table); no figure
of theirs is taken from elsewhere.

Issue 14's targets against BullMQ, from this run:

| target | wakeq | BullMQ (best configuration) | wakeq / BullMQ | met |
|---|---|---|---|---|
| drain ≥ 10× BullMQ's best, jobs/s | $(fmt0 "$tput_best") | $(pnum "${P[bull.tput]}") | $(pvs "$tput_best" "${P[bull.tput]}") | $(pmet "$tput_best" "${P[bull.tput]}" 10 ge) |
| Redis CPU per job ≤ 1/10 of BullMQ's, µs | $redis_cpu_row | ${P[bull.redis_us_job]:-–} | $(pvs "$redis_cpu_row" "${P[bull.redis_us_job]}") | $(pmet "$redis_cpu_row" "${P[bull.redis_us_job]}" 0.1 le) |
| batched enqueue ≥ 10× BullMQ's addBulk, jobs/s | $(fmt0 "$enq_many") | $(pnum "${P[enq-bull-batch]}") | $(pvs "$enq_many" "${P[enq-bull-batch]}") | $(pmet "$enq_many" "${P[enq-bull-batch]}" 10 ge) |

| figure | BullMQ | RQ | wakeq | wakeq / best peer | target | ratio (wakeq / target) | met |
|---|---|---|---|---|---|---|---|
| drain throughput, one worker process, jobs/s | ${PC[bull.tput]} | ${PC[rq.tput]} | $(fmt0 "${M[1.tput]}") (C=1), $(fmt0 "${M[32.tput]}") (C=32) | $(pvs "$tput_best" "${P[best.tput]}") | ≥ 80,000 | $(ratio "$tput_best" 80000) | $(met "$tput_best" 80000 ge) |
| Redis server CPU per job, µs | ${PC[bull.redis]} | ${PC[rq.redis]} | ${M[1.redis_us_job]} (C=1), ${M[32.redis_us_job]} (C=32) | $(pvs "$redis_cpu_row" "${P[best.redis_us_job]}") | ≤ 8 | $(ratio "$redis_cpu_row" 8) | $(met "$redis_cpu_row" 8 le) |
| Redis commands per job, Lua-internal included | ${PC[bull.cmds]} | ${PC[rq.cmds]} | ${M[1.cmds_job]} (C=1), ${M[32.cmds_job]} (C=32) | $(pvs "$cmds_row" "${P[best.cmds_job]}") | ≤ 8 | $(ratio "$cmds_row" 8) | $(met "$cmds_row" 8 le) |
| client round trips (commands sent) per job | ${PC[bull.rt]} | ${PC[rq.rt]} | ${M[1.rt_job]} (C=1), ${M[32.rt_job]} (C=32) | $(pvs "$rt_row" "${P[best.rt_job]}") | ≤ 0.1 | $(ratio "$rt_row" 0.1) | $(met "$rt_row" 0.1 le) |
| enqueue, one client, jobs/s: one at a time | ${PC[bull.enq_one]} | ${PC[rq.enq_one]} | $(fmt0 "$enq_one") | $(pvs "$enq_one" "${P[best.enq_one]}") | ≥ 25,000 | $(ratio "$enq_one" 25000) | $(met "$enq_one" 25000 ge) |
| enqueue, one client, jobs/s: batched | ${PC[bull.enq_batch]} | ${PC[rq.enq_batch]} | $(fmt0 "$enq_many") (1,000 a call) | $(pvs "$enq_many" "${P[best.enq_batch]}") | ≥ 150,000 | $(ratio "$enq_many" 150000) | $(met "$enq_many" 150000 ge) |
| Redis commands per minute, awake idle worker | ${PC[bull.idle]} | ${PC[rq.idle]} | $idle_per_min | $(pvs "$idle_per_min" "${P[best.idle]}") | ≤ 6 | $(ratio "$idle_per_min" 6) | $(met "$idle_per_min" 6 le) |
| … after the worker exited (in ${AFTER_WINDOW} s) | – | – | $after_calls | – | 0 | – | $(met "$after_calls" 0 le) |
| cold start: launch → handler started, ms median | not measured | not measured | $cold_ms | – | ≤ 20 | $(ratio "$cold_ms" 20) | $(met "$cold_ms" 20 le) |
| warm latency: enqueue → handler start, ms p50 | not measured | not measured | $lat_p50 | – | ≤ 0.5 | $(ratio "$lat_p50" 0.5) | $(met "$lat_p50" 0.5 le) |
| warm latency, ms p99 | not measured | not measured | $lat_p99 | – | ≤ 2 | $(ratio "$lat_p99" 2) | $(met "$lat_p99" 2 le) |
| worker peak RSS during the drain, MiB | ${PC[bull.hwm]} | ${PC[rq.hwm]} | $hwm_mib | $(pvs "$hwm_mib" "${P[best.hwm_mib]}") | ≤ 10 | $(ratio "$hwm_mib" 10) | $(met "$hwm_mib" 10 le) |

The bare-Redis limit (issue 14; \`bench_bare drain\`, $RUNS runs, medians):
the same $N jobs through the cheapest structure that still keeps one
record per job, from one C client (hiredis), pipelined $BARE_BATCH jobs a
round trip: an HSET a job and an RPUSH a batch at enqueue, then a round
trip a batch carrying the HSET of each job of the batch before (status,
result, finish time) and an LPOP of the next $BARE_BATCH. Drain $(fmt0 "${BR[bare.drain_rate]}") jobs/s
at ${BR[bare.drain_redis_us_job]} µs of Redis CPU and ${BR[bare.drain_cmds_job]} commands a job (enqueue $(fmt0 "${BR[bare.enqueue_rate]}") jobs/s).

| figure | bare Redis | wakeq | wakeq / bare | target | met |
|---|---|---|---|---|---|
| drain, one client / worker process, jobs/s | $(fmt0 "${BR[bare.drain_rate]}") | $(fmt0 "${M[1.tput]}") (C=1), $(fmt0 "${M[32.tput]}") (C=32) | $(pctof "$tput_best" "${BR[bare.drain_rate]}") % | ≥ 50 % | $(met "$(pctof "$tput_best" "${BR[bare.drain_rate]}")" 50 ge) |
| Redis CPU per job of the drain, µs | ${BR[bare.drain_redis_us_job]} | ${M[1.redis_us_job]} (C=1), ${M[32.redis_us_job]} (C=32) | $(ratio "$redis_cpu_row" "${BR[bare.drain_redis_us_job]}")× | – | – |
| batched enqueue, 1,000 a call, jobs/s (bare: an HSET a job and an RPUSH a call, pipelined; $BARE_ENQ_BATCH a round trip) | $(fmt0 "${BR[bareenq.enqueue_rate]}") (${BR[bareenq.enqueue_redis_us_job]} µs of Redis CPU a job) | $(fmt0 "$enq_many") | $(pctof "$enq_many" "${BR[bareenq.enqueue_rate]}") % | – (10× addBulk is $(pctof "$(awk -v b="${P[enq-bull-batch]:-0}" 'BEGIN {print b * 10}')" "${BR[bareenq.enqueue_rate]}") % of bare) | – |
| one at a time, one connection, a second: PING vs enqueue | $(fmt0 "${BR[ping.rate]}") (p50 ${BR[ping.p50_us]} µs) | $(fmt0 "$enq_one") | $(pctof "$enq_one" "${BR[ping.rate]}") % | ≥ 90 % | $(met "$(pctof "$enq_one" "${BR[ping.rate]}")" 90 ge) |

\`\`\`
$(cat "$T/bare")
\`\`\`

Every drain run (\`span_s\`: first job's \`started\` (read by \`bench_core
first\` while the drain runs) to last job's \`finished\`, both Redis TIME stamps; \`tput\` = N / span; \`tput_wake\` = N /
(drain.seconds of the /wake answer − IDLE_TIMEOUT $DRAIN_IDLE s);
\`*_util\`: CPU seconds of the process over the span, 1.00 = one core;
\`rt_job\`: client commands — EVALSHA, EVAL, BLPOP, PING, SCRIPT, … —
per job; \`script_us_job\`: the EVALSHA/EVAL usec of INFO commandstats
per job; \`hwm_kib\`: VmHWM of the worker at drain end):

\`\`\`
$(cat "$T/drain")
\`\`\`

Enqueue runs (\`bench_core enqueue\`: one connection, \`queue_enqueue\` with
n=1 in a loop for $ENQ_ONE jobs, or n=1000 for $ENQ_MANY jobs; Redis and
client CPU per job):

\`\`\`
$(cat "$T/enq")
\`\`\`

The peers (tests/lib/peers.sh; PEER_RUNS=$PEER_RUNS rounds, medians): the jobs are
added first (untimed, 1,000 a call), then one worker process drains them:
BullMQ with a processor that returns nothing, at concurrency
${BULL_CONCS// / and } ($PEER_N jobs); RQ's SimpleWorker ($RQ_N jobs) and its default Worker,
which forks a work horse a job ($RQ_FORK_N jobs), in burst mode, on a
function that does nothing. Jobs/s from the systems' own stamps (BullMQ:
first processor call → last "completed" event; RQ: first started_at →
last ended_at); Redis CPU and commands (Lua-internal included) over the
drain process's whole life (Redis 7.0's INFO commandstats counts the
commands a script runs: the \`mon-\` lines' \`cmds_job\`, counted by MONITOR,
agree); peak RSS of that process (RQ's Worker: the
parent, not the horses). Client commands per job: MONITOR over a drain of
$PEER_MON_N jobs of its own (commands the scripts run left out; pipelined
commands count one each). Enqueue: the same counts as wakeq's, one
\`Queue.add\` / \`enqueue\` at a time or \`addBulk\` / \`enqueue_many\` of 1,000.
Idle: one worker each (BullMQ's \`Worker\` and RQ's \`Worker\`, their
defaults) on an empty queue of a redis-server of its own, commands over
$IDLE_WINDOW s after its start. Ratios: wakeq's best concurrency over the
peers' best configuration (for CPU, commands and round trips, lower is
better: a ratio below 1 is wakeq ahead).

\`\`\`
$(cat "$T/peers" 2>/dev/null)
\`\`\`

Cold start (\`bench_core cold\`, $COLD_RUNS runs; one job enqueued, clock
read, fork + exec of the worker, \`POST /wake\` as soon as connect succeeds,
retried every 0.2 ms; handler start = the job's \`started\` Redis TIME
stamp): runs $cold_runs ms; launch → listening median $cold_listen_ms ms.

Warm latency (\`bench_core latency\`, $LAT_N jobs one every $LAT_PACE_US µs
to a worker blocked on its wake markers; client clock read just before
\`queue_enqueue\`, handler start = the job's \`started\` stamp, written by
the take script in Redis, the same machine clock; so this is a lower bound
that leaves out the take reply and the hand-off to a slot thread, and
enqueue → \`finished\` (the settle script) is an upper bound):
start p50 $lat_p50 / p99 $lat_p99 ms; finished p50 $done_p50 / p99
$done_p99 ms; the enqueue round trip alone p50 $rtt_p50 ms.

\`\`\`
$(cat "$T/lat")
\`\`\`

What limits each figure (this run): Redis is the bottleneck of the drain.
Redis CPU per job was ${M[1.redis_us_job]} µs (C=1) / ${M[32.redis_us_job]} µs (C=32), so one
fully busy Redis core caps a drain at about $(awk -v r="${M[1.redis_us_job]}" 'BEGIN {printf "%.0f", 1e6 / r}') jobs/s; the worker used
${M[1.worker_us_job]} µs (C=1) / ${M[32.worker_us_job]} µs (C=32) of CPU per job (median util
${M[1.worker_util]} / ${M[32.worker_util]} of a core) against Redis ${M[1.redis_util]} / ${M[32.redis_util]}; for the rest of
the span Redis either waited for a core taken by other work
(\`redis_runq_s\`, \`machine_busy\`) or sat idle between two script calls
of the drain thread (the take → hand-out → settle turn-around). Round trips are not a limit: one
script call settles and takes ~33 (C=1) to ~47 (C=32) jobs.

One-off analysis (2026-11-22, by hand; re-check after changes to the
scripts, the slots or the linking):
- Redis CPU per job (perf, cpu-clock, during a C=1 drain): 91 % of Redis
  time is inside EVALSHA; about half of that runs the redis.call commands
  (HMGET/HSET on a 100k-key dict with listpack hashes, ZADD), ~10 % is
  \`snprintf("%.17g")\` of Lua numbers passed to redis.call (Redis 7.0 formats
  every numeric argument that way: NOW_US, attempts, deadlines, 100, the
  TTL), ~10 % \`parseReply\` (each redis.call reply goes through RESP into
  Lua), the rest the Lua VM. Scratch copies of take.lua (before the
  webhook look-up was limited to jobs with a callback): that change plus
  skipping PUBLISH when \`PUBSUB NUMSUB\` says nobody listens measured 5.3
  commands/job (from 7.3) and 18–20 µs/job (from 21–25, interleaved
  runs); passing the timestamps and integers to redis.call as strings as
  well gave ~17–18 µs/job. ≤ 8 µs needs about two redis.call a job or a
  different per-job record than a hash with a TTL; script edits alone do
  not reach it.
- Enqueue one at a time is bound by the round trip: \`redis-benchmark -t
  ping_mbulk -c 1\` does 23,500 PING/s (p50 31 µs) on this VM, close to the
  25,000/s target before any work; each single enqueue also costs Redis
  ${enq_one_redis} µs of CPU in this run (a script run's fixed cost: TIME,
  INCRBY of the sequence, the marker LPUSH/LTRIM, the registry
  ZRANGEBYSCORE, the syscalls) and the client ${enq_one_client} µs.
  Batched, Redis spends ${enq_many_redis} µs and the client ${enq_many_client} µs a job, one
  after the other on one connection, so the rate is about 1 / (sum);
  150,000/s needs ≤ 6.7 µs a job in total, or the two overlapped (two
  batches in flight on the connection).
- Cold start and RSS: until media became a plugin (wakeq-media.so, loaded
  on the first media job; 2026-11-22) the worker linked FFmpeg's 180 shared
  libraries: \`perf stat wakeq-worker --help\` ~140 ms of CPU and ~3,000
  page faults, launch → handler ~180–240 ms, peak RSS ~41 MiB (~30 MiB of it
  file-backed library pages). Now it maps 37 libraries (14 ms, 526 page
  faults for --help) and the figures above apply. What remains of the cold
  start: loading those 37 (libpq → krb5/ldap/sasl, libcurl → …), the
  process start in this VM (~8 ms even for /bin/true from bash) and, after
  listen, the Redis connect, register and take (~5 ms); the best runs are
  ~20 ms, the median moves with the machine's load.
- Worker CPU at C=32 is ~2.5× that at C=1 (~11 vs ~4 µs/job) with 1.1
  context switches a job (0.045 at C=1): the 32 slot threads sleep on
  slot_cv / w->mu and are woken about once per job. Waking one slot per
  task instead of a broadcast, or an adaptive mutex, did not change it
  (scratch copies). It does not limit this benchmark (the worker uses
  ~0.3 core) but takes CPU from Redis on a 2-core machine.
- Warm latency p99 and cold start medians move with the machine's load:
  the bare enqueue round trip's own p99 is in the latency block above.

Idle: a worker with IDLE_TIMEOUT $((IDLE_WINDOW + 10)) s ran one job, then
Redis commandstats were counted over $IDLE_WINDOW s ($idle_calls commands:
${idle_detail:-none}), and again over $AFTER_WINDOW s after the worker
exited ($after_calls).
<!-- /bench:core -->
EOF
)

printf '%s\n' "$section" >"$T/section"
if [ "$PARTIAL" = 1 ]; then
	cat "$T/section"
	exit 0
fi
bench_write core "$T/section"
