#!/usr/bin/env bash
# instr.sh - what Redis spends on wakeq's scripts, counted in instructions
# (callgrind on redis-server): deterministic to ~0.1 %, unlike time on a
# shared machine, so two builds compare even under load (issue 14).
#
#   tests/bench/instr.sh                             figures into docs/BENCHMARKS.md
#   NOWRITE=1 N=500 tests/bench/instr.sh             quick look, nothing written
#   BASE_BUILD=/path/to/other/build tests/bench/instr.sh   a second column
#
# Each figure is the instructions redis-server ran (counters zeroed after
# a warm-up, dumped after the measured part) divided by the operations;
# the server's timer runs once a second (hz 1), so that its work, which
# grows with the time callgrind takes, is not counted with the operations':
#   PING, EVALSHA of `return 1`     one client, one command at a time (redis-benchmark -c 1)
#   enqueue, one at a time          bench_core enqueue N 1 (a script run a job)
#   enqueue, batches of 1000        bench_core enqueue N 1000, per job
#   drain, C=1                      a worker's /wake draining N queued noop jobs, per job
# and a cost model: one redis.call of each kind a take or settle makes,
# timed in a loop inside one script on a record the drain left.
set -eu
. "$(dirname "$0")/../lib/bench.sh"

N=${N:-2000}
BIN=$PWD/$BUILD
bench_need "$BIN/tests/tools/bench_core" "$BIN/wakeq-worker" "$FREEPORT" -- \
	valgrind callgrind_control redis-server redis-benchmark curl jq
log() { echo "# $*" >&2; }
t_tmpdir

# cg_start: a redis-server under callgrind on a free port; sets CP, CPID, CU
cg_start() {
	CP=$($FREEPORT)
	rm -f "$T"/cg.out*
	valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" redis-server --port "$CP" \
		--bind 127.0.0.1 --save '' --appendonly no --dir "$T" --hz 1 --dynamic-hz no \
		>"$T/vg.log" 2>&1 &
	CPID=$!
	CU=redis://127.0.0.1:$CP
	wait_until 60 sh -c "redis-cli -p $CP ping 2>/dev/null | grep -q PONG" ||
		{ echo "instr: redis-server under callgrind did not start" >&2; exit 1; }
}
cg_stop() {
	redis-cli -p "$CP" shutdown nosave >/dev/null 2>&1 || true
	wait "$CPID" 2>/dev/null || true
}
cg_zero() { callgrind_control -z "$CPID" >/dev/null; }
# cg_dump OPS: instructions since cg_zero, per operation
cg_dump() {
	local f
	callgrind_control -d "$CPID" >/dev/null
	f=$(ls -t "$T"/cg.out.* | head -1)
	awk -v n="$1" '/^(summary|totals):/ {s = $2} END {printf "%d\n", s / n}' "$f"
	rm -f "$T"/cg.out.*
}

# measure BUILDDIR: one line "ping r1 enq1 enqb drain"
measure() {
	local b=$1 sha wp wpid body
	cg_start
	redis-benchmark -p "$CP" -c 1 -n 20 ping >/dev/null
	cg_zero
	redis-benchmark -p "$CP" -c 1 -n "$N" ping >/dev/null
	echo "ping $(cg_dump "$N")"
	sha=$(redis-cli -p "$CP" script load 'return 1')
	redis-benchmark -p "$CP" -c 1 -n 20 evalsha "$sha" 0 >/dev/null
	cg_zero
	redis-benchmark -p "$CP" -c 1 -n "$N" evalsha "$sha" 0 >/dev/null
	echo "r1 $(cg_dump "$N")"
	"$b/tests/tools/bench_core" enqueue "$CU" warm 20 1 >/dev/null
	cg_zero
	"$b/tests/tools/bench_core" enqueue "$CU" one "$N" 1 >/dev/null
	echo "enq1 $(cg_dump "$N")"
	cg_zero
	"$b/tests/tools/bench_core" enqueue "$CU" bench "$N" 1000 >/dev/null
	echo "enqb $(cg_dump "$N")"
	wp=$($FREEPORT)
	env PORT="$wp" HOST=127.0.0.1 REDIS_URL="$CU" QUEUES=bench CONCURRENCY=1 IDLE_TIMEOUT=0.3 \
		EXIT_ON_IDLE=false LOG_LEVEL=warn "$b/wakeq-worker" >"$T/w.log" 2>&1 &
	wpid=$!
	wait_until 60 curl -fs -o /dev/null "http://127.0.0.1:$wp/healthz" ||
		{ echo "instr: the worker did not start" >&2; cat "$T/w.log" >&2; exit 1; }
	cg_zero
	body=$(curl -fs -X POST "http://127.0.0.1:$wp/wake")
	[ "$(jq -r .drain.done <<<"$body")" = "$N" ] ||
		{ echo "instr: the drain did $(jq -r .drain.done <<<"$body") of $N jobs" >&2; exit 1; }
	echo "drain $(cg_dump "$N")"
	kill_wait "$wpid"
	[ "${2:-}" != costs ] || { costs; asfunction; sketch; }
	cg_stop
}

# costs: what one redis.call costs inside a script, by kind, on the
# records the drain left (done job hashes of ~16 fields): a script runs
# each call 1000 times in a loop; less the empty loop, per call.
costs() {
	local k body script
	k=$(redis-cli -p "$CP" --scan --pattern 'wakeq:{bench}:job:*' | head -1)
	[ -n "$k" ] || { echo "instr: no job record left for the cost model" >&2; exit 1; }
	while read -r name body; do
		script="local k = KEYS[1] for i = 1, 1000 do $body end return 1"
		redis-cli -p "$CP" eval "$script" 1 "$k" >/dev/null
		cg_zero
		redis-cli -p "$CP" eval "$script" 1 "$k" >/dev/null
		echo "$name $(cg_dump 1000)"
	done <<'LUA'
c_loop local x = i
c_hget1 redis.call('HGET', k, 'type')
c_hmget3 redis.call('HMGET', k, 's', 'token', 'dependents')
c_hmget4 redis.call('HMGET', k, 's', 'payload', 'attempts', 'run_at')
c_hmget11 redis.call('HMGET', k, 'type', 'payload', 'attempts', 'max_attempts', 'timeout', 'callback', 'trace', 'created', 'priority', 'run_at', 'deps')
c_hset1 redis.call('HSET', k, 'status', 'done')
c_hset5 redis.call('HSET', k, 'status', 'active', 'attempts', '1', 'token', '12345', 'worker', 'w-1', 'started', '1796000000000000')
c_zadd1 redis.call('ZADD', 'wakeq:{bench}:cm', i, 'm')
c_concat local s = k .. '\t' .. 'active' .. '\t' .. '' .. '\t' .. '' .. '\t' .. '1796000000000000'
LUA
}

# asfunction: the one-at-a-time enqueue as an EVALSHA script and as a Redis
# 7 function made of the same text (asfunction.awk), the same arguments
# sent by redis-benchmark (a job with a random id: the layout of
# enqueue.lua's ENQ_* as queue.c sends it); both records are compared.
asfunction() {
	local q=internal/queue sha s args k1 k2
	sh $q/lua2c.sh --parts "$T" $q/lua/_lib.lua $q/lua/enqueue.lua
	cat "$T/lib.lua" "$T/script.lua" >"$T/script"
	awk -f tests/bench/asfunction.awk enqueue "$T/lib.lua" "$T/script.lua" >"$T/function"
	sha=$(redis-cli -p "$CP" -x script load <"$T/script")
	redis-cli -p "$CP" -x function load replace <"$T/function" >/dev/null
	s=$(printf '@noop\t3\t0')
	args=(1 'wakeq:{fx}:' 1 'fx-__rand_int__' 0 0 0 5 '' type noop payload '{}'
		max_attempts 3 timeout 0 s "$s" 0)
	for c in "EVALSHA $sha" "FCALL wq_enqueue"; do
		redis-benchmark -p "$CP" -c 1 -n 20 -r 1000000000 $c "${args[@]}" >/dev/null
		cg_zero
		redis-benchmark -p "$CP" -c 1 -n "$N" -r 1000000000 $c "${args[@]}" >/dev/null
		echo "x_${c%% *} $(cg_dump "$N")"
	done
	redis-cli -p "$CP" evalsha "$sha" "${args[@]/__rand_int__/a}" >/dev/null
	redis-cli -p "$CP" fcall wq_enqueue "${args[@]/__rand_int__/b}" >/dev/null
	k1=$(redis-cli -p "$CP" hkeys 'wakeq:{fx}:job:fx-a' | sort | tr '\n' ' ')
	k2=$(redis-cli -p "$CP" hkeys 'wakeq:{fx}:job:fx-b' | sort | tr '\n' ' ')
	[ -n "$k1" ] && [ "$k1" = "$k2" ] ||
		{ echo "instr: the function's record ($k2) is not the script's ($k1)" >&2; exit 1; }
}

# sketch: a drain through tests/bench/sketch/ (a per-batch lease, two
# per-job calls; not the engine), driven by redis-cli a batch of 64 at a
# time, the instructions per job settled; and the bare-Redis limit's
# client (bench_bare: enqueue and drain, both counted)
sketch() {
	local d=tests/bench/sketch k='wakeq:{sk}:' st ss left=$((N + 128))
	redis-cli -p "$CP" eval "$(cat $d/fill.lua)" 1 "$k" "$left" >/dev/null
	st=$(redis-cli -p "$CP" script load "$(cat $d/take.lua)")
	ss=$(redis-cli -p "$CP" script load "$(cat $d/settle.lua)")
	sketch_batch
	sketch_batch
	cg_zero
	while [ "$left" -gt 0 ]; do sketch_batch; done
	echo "x_sketch $(cg_dump "$N")"
	[ "$(redis-cli -p "$CP" zcard "${k}done")" = $((N + 128)) ] ||
		{ echo "instr: the sketch settled $(redis-cli -p "$CP" zcard "${k}done") of $((N + 128))" >&2; exit 1; }
	cg_zero
	"$BIN/tests/tools/bench_bare" drain "$CP" "$N" 64 >/dev/null
	echo "x_bare $(cg_dump "$N")"
}

# sketch_batch: one take and its settle (sketch's k, st, ss; counts left)
sketch_batch() {
	local -a r args
	local i
	mapfile -t r < <(redis-cli -p "$CP" evalsha "$st" 1 "$k" 64 4102444800000)
	[ ${#r[@]} -gt 1 ] || { echo "instr: the sketch's take leased nothing" >&2; exit 1; }
	args=("${r[0]}")
	for ((i = 1; i < ${#r[@]}; i += 4)); do args+=("${r[i]}" '{}' $((r[i + 3] + 1))); done
	left=$((left - $(redis-cli -p "$CP" evalsha "$ss" 1 "$k" "${args[@]}")))
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "this build ($BUILD), N=$N"
measure "$BIN" costs >"$T/this"
cat "$T/this" >&2
if [ -n "${BASE_BUILD:-}" ]; then
	log "base build ($BASE_BUILD)"
	measure "$BASE_BUILD" >"$T/base"
	cat "$T/base" >&2
fi
rev() { git -C "$1/.." log -1 --format='%h (%s)' 2>/dev/null | cut -c1-90 || echo "?"; }
v() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
fmt() { awk -v n="$1" 'BEGIN { s = sprintf("%d", n); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
row() { # row LABEL KEY
	local a b
	a=$(v "$T/this" "$2")
	if [ -n "${BASE_BUILD:-}" ]; then
		b=$(v "$T/base" "$2")
		echo "| $1 | $(fmt "$b") | $(fmt "$a") | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%+.1f %%", (a - b) * 100 / b}') |"
	else
		echo "| $1 | $(fmt "$a") | $(awk -v a="$a" -v p="$(v "$T/this" ping)" 'BEGIN {printf "%.1f", a / p}') |"
	fi
}
sec=$T/section
{
	echo "<!-- bench:instr -->"
	echo "## Redis instructions an operation"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
	echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') under callgrind, \`tests/bench/instr.sh\` (N=$N)."
	echo "Load average at start / end: $load0 / $(cut -d' ' -f1-3 /proc/loadavg) (instructions do not depend on it)."
	echo "Instructions redis-server ran, divided by the operations (its whole"
	echo "work: reading the request, the script, the reply). This build: $(rev "$BIN")."
	[ -z "${BASE_BUILD:-}" ] || echo "Base build (\`BASE_BUILD\`): $(rev "$BASE_BUILD")."
	echo
	if [ -n "${BASE_BUILD:-}" ]; then
		echo "| operation | base build | this build | change |"
		echo "|---|---|---|---|"
	else
		echo "| operation | instructions | PINGs |"
		echo "|---|---|---|"
	fi
	row "PING (one client, one at a time)" ping
	row "EVALSHA of \`return 1\`" r1
	row "enqueue, one at a time (a script run a job)" enq1
	row "enqueue, batches of 1000, a job" enqb
	row "drain at C=1, a job (take and settle)" drain
	echo
	echo "What one call costs inside a script (this build's Redis; a loop of 1000"
	echo "in one EVAL on a done job's record of ~16 fields, less the empty loop):"
	echo
	echo "| inside a script | instructions a call |"
	echo "|---|---|"
	cost() { echo "| $1 | $(fmt $(($(v "$T/this" "$2") - $(v "$T/this" c_loop)))) |"; }
	cost "HGET, 1 field" c_hget1
	cost "HMGET, 3 fields (a done settle's read: token, s, dependents)" c_hmget3
	cost "HMGET, 4 fields (a lease's read: s, payload, attempts, run_at)" c_hmget4
	cost "HMGET, 11 fields (a lease's read before the packed spec)" c_hmget11
	cost "HSET, 1 field" c_hset1
	cost "HSET, 5 fields (a lease's write)" c_hset5
	cost "ZADD, 1 member" c_zadd1
	cost "an event line built in Lua (5 concatenations)" c_concat
	echo
	echo "The one-at-a-time enqueue as a Redis 7 function (\`FUNCTION LOAD\` of"
	echo "the same text, its library functions made once; \`tests/bench/asfunction.awk\`,"
	echo "an experiment wakeq does not run: docs/QUEUE.md \"Redis 7 functions\"),"
	echo "both sent by \`redis-benchmark -c 1\` with the same arguments:"
	echo
	echo "| enqueue, one at a time | instructions | change |"
	echo "|---|---|---|"
	echo "| EVALSHA (what wakeq sends) | $(fmt "$(v "$T/this" x_EVALSHA)") | |"
	echo "| FCALL | $(fmt "$(v "$T/this" x_FCALL)") | $(awk -v a="$(v "$T/this" x_FCALL)" -v b="$(v "$T/this" x_EVALSHA)" 'BEGIN {printf "%+.1f %%", (a - b) * 100 / b}') |"
	echo
	echo "Where a different record would take the drain (docs/QUEUE.md \"What issue"
	echo "14's remaining targets would take\"): \`tests/bench/sketch/\`, a lease kept"
	echo "in \`active\` alone (a token a batch), a take that only reads a job's"
	echo "record and a settle that checks the batch's tokens in one command and"
	echo "writes each record once: two per-job calls where the engine has four,"
	echo "no groups, limits, dependencies, histograms or retention (a sketch, not"
	echo "an engine), batches of 64 sent by redis-cli; and the bare-Redis limit's"
	echo "client (\`bench_bare drain\`, batches of 64: its enqueue and its drain together):"
	echo
	echo "| a job, instructions | |"
	echo "|---|---|"
	echo "| the engine's drain (above) | $(fmt "$(v "$T/this" drain)") |"
	echo "| the sketch's take and settle | $(fmt "$(v "$T/this" x_sketch)") |"
	echo "| bare Redis: enqueue and drain | $(fmt "$(v "$T/this" x_bare)") |"
	echo "<!-- /bench:instr -->"
} >"$sec"
cat "$sec"
[ "${NOWRITE:-0}" = 1 ] || bench_write instr "$sec"
