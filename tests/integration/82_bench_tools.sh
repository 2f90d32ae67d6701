#!/usr/bin/env bash
# 82_bench_tools - the benchmark tools (tests/tools/bench_*) at the
# smallest size, so that a defect in one shows before a benchmark run of
# minutes: each exits 0 and prints its whole summary. No figure is judged.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

# bench_core coldstart: one round of a bare launch and two cold starts of
# the worker; then the distribution of each of the five figures
"$BIN/tests/tools/bench_core" coldstart "$REDIS_URL" default 1 "$BIN/wakeq-worker" /bin/true \
	>"$T/cold.out" 2>"$T/cold.err"
expect_eq "bench_core coldstart exits 0" 0 "$?"
expect_eq "bench_core coldstart prints the five distributions" 5 \
	"$(grep -cE '^(bare_exit|wake_listen|wake_start|once_start|once_exit)_us n=1 p50=' "$T/cold.out")"

# bench_bare ping: the round-trip bound, with its median
"$BIN/tests/tools/bench_bare" ping "$REDIS_PORT" 5 >"$T/ping.out" 2>"$T/ping.err"
expect_eq "bench_bare ping exits 0" 0 "$?"
check "bench_bare ping prints rate and p50 ($(cat "$T/ping.out"))" \
	grep -qE '^ping n=5 rate=[0-9]+ p50_us=[0-9]+$' "$T/ping.out"

[ "$_t_failed" = 0 ] || { diag "$T/cold.out" "$T/cold.err" "$T/ping.err"; }
exit 0
