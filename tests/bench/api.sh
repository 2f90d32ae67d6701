#!/usr/bin/env bash
# bench/api.sh - wrk against POST /v1/jobs of the real wakeq-api: 64
# keep-alive connections, Redis only and with Postgres. Reports requests/s,
# p50/p99 latency and the API's peak RSS (VmHWM), and writes them into
# docs/BENCHMARKS.md between <!-- bench:api --> markers.
#   BENCH_SECONDS (10), BENCH_RUNS (3, the median run is kept)
cd "$(dirname "$0")/../.."
source tests/lib/servers.sh
t_tmpdir
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
command -v wrk >/dev/null || { echo "wrk is not installed"; exit 1; }
start_redis
start_postgres >/dev/null

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

# run_one LABEL [ENV...]: prints "LABEL rps p50 p99 rss_kb non2xx errors"
run_one() {
	local label=$1 port pid line rss
	shift
	port=$($FREEPORT)
	env PORT=$port REDIS_URL=$REDIS_URL API_TOKEN=bench-token DATABASE_URL= \
		RECONCILE_INTERVAL=0 LOG_LEVEL=warn "$@" "$BIN/wakeq-api" >>"$T/api.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
	# warm-up, then the measured run
	wrk -t2 -c64 -d1s -s "$T/post.lua" "http://127.0.0.1:$port/v1/jobs" >/dev/null 2>&1
	line=$(wrk -t2 -c64 -d"${SECS}s" -s "$T/post.lua" "http://127.0.0.1:$port/v1/jobs" 2>&1 | grep '^RESULT')
	rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
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
redis_only=$(for _ in $(seq 1 "$RUNS"); do run_one redis; done | tee /dev/stderr | median)
with_pg=$(for _ in $(seq 1 "$RUNS"); do run_one postgres DATABASE_URL="$DATABASE_URL"; done | tee /dev/stderr | median)

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
before the runs: ${load} (other work on the machine depresses these figures).

| setup | requests/s | p50 ms | p99 ms | peak RSS MB | errors |
|---|---|---|---|---|---|
$(fmt "$redis_only" "Redis only")
$(fmt "$with_pg" "Redis + Postgres row")

Targets: ≥ 20,000/s Redis only, ≥ 5,000/s with Postgres, p99 ≤ 10 ms, RSS ≤ 16 MB.
<!-- /bench:api -->
MD
)
echo "$section"
doc=docs/BENCHMARKS.md
[ -f "$doc" ] || printf '# Benchmarks\n\n' >"$doc"
if grep -q '<!-- bench:api -->' "$doc"; then
	awk -v repl="$section" '
		/<!-- bench:api -->/ { print repl; skip = 1; next }
		/<!-- \/bench:api -->/ { skip = 0; next }
		!skip { print }' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
else
	printf '\n%s\n' "$section" >>"$doc"
fi
