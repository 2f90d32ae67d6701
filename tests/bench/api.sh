#!/usr/bin/env bash
# bench/api.sh - wrk against POST /v1/jobs of the real wakeq-api: 64
# keep-alive connections, Redis only and with Postgres. Reports requests/s,
# p50/p99 latency and the API's peak RSS (VmHWM), and writes them into
# docs/BENCHMARKS.md between <!-- bench:api --> markers.
#   BENCH_SECONDS (10), BENCH_RUNS (3, the median run is kept),
#   API_BIN (build/wakeq-api: another build to compare), BENCH_NO_DOC=1
#   (print the section, leave docs/BENCHMARKS.md alone), BASELINE_BIN (an
#   older wakeq-api measured in the same runs, interleaved, for a before
#   and after under the same load). Extra settings
#   for the API (HTTP_THREADS=2 INTAKE_THREADS=1 ...) go in BENCH_API_ENV.
cd "$(dirname "$0")/../.."
source tests/lib/servers.sh
. tests/lib/bench.sh
t_tmpdir
SECS=${BENCH_SECONDS:-10}
API_BIN=${API_BIN:-$BIN/wakeq-api}
RUNS=${BENCH_RUNS:-3}
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 1; }
# Private copies: a rebuild of the shared build/ during the runs (others
# work in this checkout) must not swap the binaries under the benchmark.
cp "$FREEPORT" "$T/freeport" && FREEPORT=$T/freeport || exit 1
cp "$API_BIN" "$T/wakeq-api" && API_BIN=$T/wakeq-api || exit 1
if [ -n "${BASELINE_BIN:-}" ]; then
	cp "$BASELINE_BIN" "$T/wakeq-api-before" && BASELINE_BIN=$T/wakeq-api-before || exit 1
fi
start_redis || exit 1
start_postgres >/dev/null || exit 1

cat >"$T/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = '{"type":"noop","payload":{"n":1}}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
LUA

# run_one LABEL BIN [ENV...]: prints "LABEL rps p50 p99 non2xx errors rss_kb"
run_one() {
	local label=$1 bin=$2 port pid line rss
	shift 2
	port=$($FREEPORT)
	env PORT=$port REDIS_URL=$REDIS_URL API_TOKEN=bench-token DATABASE_URL= \
		RECONCILE_INTERVAL=0 LOG_LEVEL=warn ${BENCH_API_ENV:-} "$@" "$bin" >>"$T/api.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
	# warm-up, then the measured run
	wrk -t2 -c64 -d1s -s "$T/post.lua" "http://127.0.0.1:$port/v1/jobs" >/dev/null 2>&1
	line=$(wrk -t2 -c64 -d"${SECS}s" -s "$T/post.lua" "http://127.0.0.1:$port/v1/jobs" 2>&1 | grep '^RESULT')
	rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)
	if [ -z "$rss" ] || [ -z "$line" ]; then
		echo "wakeq-api died or did not answer; its log:" >&2
		tail -20 "$T/api.log" >&2
	fi
	kill_wait "$pid"
	rcli flushall >/dev/null
	psql "$DATABASE_URL" -qc 'truncate jobs' >/dev/null 2>&1
	echo "$label ${line#RESULT } $rss"
}

median() { # median of RUNS lines by requests/s
	sort -k2,2n | awk -v n="$RUNS" 'NR == int((n + 1) / 2)'
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running $RUNS x ${SECS}s per setup (load average $load)..." >&2
PG="DATABASE_URL=$DATABASE_URL"
for _ in $(seq 1 "$RUNS"); do
	run_one redis "$API_BIN"
	[ -n "${BASELINE_BIN:-}" ] && run_one redis-before "$BASELINE_BIN"
	run_one postgres "$API_BIN" "$PG"
	[ -n "${BASELINE_BIN:-}" ] && run_one postgres-before "$BASELINE_BIN" "$PG"
done | tee /dev/stderr >"$T/runs"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
pick() { awk -v l="$1" '$1 == l' "$T/runs" | median; }
redis_only=$(pick redis)
with_pg=$(pick postgres)

fmt() { # label rps p50 p99 non2xx errors rss
	read -r _ rps p50 p99 non2xx errs rss <<<"$1"
	printf '| %s | %s | %s | %s | %.1f | %s |\n' "$2" "$rps" "$p50" "$p99" "$(echo "$rss / 1024" | bc -l)" "$((non2xx + errs))"
}
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
section=$(cat <<MD
<!-- bench:api -->
### wakeq-api: POST /v1/jobs

\`tests/bench/api.sh\` — wrk, 2 threads, 64 keep-alive connections, ${SECS} s
after a 1 s warm-up, body \`{"type":"noop","payload":{"n":1}}\` with a bearer
token; median of ${RUNS} runs. Redis 7, Postgres 15 (fsync off) and wrk on
the same machine. $(date -u +%Y-%m-%d), $(nproc) cores, ${cpu}; load average
before the runs: ${load}, after: ${load_after} (other work on the machine
depresses these figures)$([ -n "${BASELINE_BIN:-}" ] && echo "; the \"before\" rows are the previous
build, run interleaved with the current one under the same load").

| setup | requests/s | p50 ms | p99 ms | peak RSS MB | errors |
|---|---|---|---|---|---|
$(fmt "$redis_only" "Redis only")
$(fmt "$with_pg" "Redis + Postgres row")
$([ -n "${BASELINE_BIN:-}" ] && fmt "$(pick redis-before)" "Redis only, before (one enqueue per request)")
$([ -n "${BASELINE_BIN:-}" ] && fmt "$(pick postgres-before)" "Redis + Postgres row, before (one INSERT per request)")

Targets: ≥ 20,000/s Redis only, ≥ 5,000/s with Postgres, p99 ≤ 10 ms, RSS ≤ 16 MB.

How: group commit. The HTTP threads parse and check each request (a bad
one is answered at once and touches nothing), then defer its answer
(the connection is suspended, no thread held) and hand it to an intake
thread (\`INTAKE_THREADS\`, 1). That thread sends everything that arrived
while its previous batch was in flight as one Postgres INSERT (\`jsonb_to_recordset\`,
\`ON CONFLICT DO NOTHING\`) and one enqueue script per queue
(\`INTAKE_BATCH\` jobs at most, 256), then answers each request with its
own outcome (202, 200 for a known idempotency key, 400, 503).

What limits it (perf, strace -c, /proc CPU ticks, 2026-11-22): the two
cores are shared by wrk, Redis, Postgres and the API. At ~28k/s
Redis-only the CPU per request was API ~36 µs, Redis ~17 µs, wrk ~13 µs,
so the machine saturates near 30k/s. Most of the API's share is kernel
time: ~9 syscalls per request (recv, send, epoll_wait, libmicrohttpd's
suspend/resume = 2 epoll_ctl + an eventfd write, getrandom for the
UUIDv7) in a VM where each costs several µs. With Postgres, the INSERT
costs the backend ~12-30 µs per row (4 indexes), and p99 follows the
batch cycle under CPU contention from other work. One intake thread
measured as well as two or four (Redis-only) and better with Postgres
(concurrent batches contend on the same right-most index pages of the
time-ordered ids), so it is the default.
<!-- /bench:api -->
MD
)
[ -n "${BENCH_NO_DOC:-}" ] && NOWRITE=1
printf '%s\n' "$section" >"$T/section"
bench_write api "$T/section"
