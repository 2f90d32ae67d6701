#!/usr/bin/env bash
# coldstart.sh - cold start of the worker against a bare process launch,
# in the same run (issue 14: within 10 ms of a bare launch).
#
#   tests/bench/coldstart.sh                     figures into docs/BENCHMARKS.md
#   NOWRITE=1 RUNS=5 tests/bench/coldstart.sh    quick look, nothing written
#
# RUNS rounds (bench_core coldstart), interleaved so the machine's load
# falls on all alike, each with one noop job queued on a local
# redis-server 7 (loopback, no persistence) before the launch:
#   bare   posix_spawn of BARE (/bin/true: libc only) until it exited
#   wake   posix_spawn of build/wakeq-worker, POST /wake as soon as its
#          port accepts (connect retried every 0.2 ms), handler start =
#          the job's `started` stamp (Redis TIME at the take, the same
#          machine clock as the launch's)
#   once   the same with ONCE=true: it drains at start without HTTP
# BASE_WORKER=PATH adds the same rounds for another build of the worker
# (e.g. one built from an older commit), interleaved too.
set -eu
. "$(dirname "$0")/../lib/bench.sh"

RUNS=${RUNS:-101}
BARE=${BARE:-/bin/true}
WORKER=$BIN/wakeq-worker
TOOL=$BIN/tests/tools/bench_core
bench_need "$WORKER" "$TOOL" "$FREEPORT" "$BARE"
log() { echo "# $*" >&2; }

t_tmpdir
# a snapshot of the binary: a rebuild during the run cannot mix two builds
mkdir -p "$T/bin" "$T/base"
cp "$WORKER" "$T/bin/wakeq-worker"
WORKER=$T/bin/wakeq-worker
[ -z "${BASE_WORKER:-}" ] || cp "$BASE_WORKER" "$T/base/wakeq-worker"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start_redis
redis_version=$(rcli info server | awk -F: '/^redis_version:/ {print $2}' | tr -d '\r')

# RUNS rounds of one round each, so this build and the base interleave
: >"$T/this"
: >"$T/base.out"
for i in $(seq 1 "$RUNS"); do
	"$TOOL" coldstart "$REDIS_URL" cold 1 "$WORKER" "$BARE" | grep '^run' >>"$T/this"
	[ -z "${BASE_WORKER:-}" ] ||
		"$TOOL" coldstart "$REDIS_URL" cold 1 "$T/base/wakeq-worker" "$BARE" |
		grep '^run' >>"$T/base.out"
	[ $((i % 20)) != 0 ] || log "round $i/$RUNS"
done

# dist FILE FIELD: "p50 p99" in ms (nearest rank)
dist() {
	tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | sort -n |
		awk '{a[NR]=$1} END {k50=int(NR*0.5+0.999999); k99=int(NR*0.99+0.999999);
			printf "%.1f %.1f\n", a[k50]/1000, a[k99]/1000}'
}
libs() { ldd "$1" | grep -c '=>\|ld-linux'; }
read -r bare50 bare99 < <(dist "$T/this" bare_exit_us)
read -r wake50 wake99 < <(dist "$T/this" wake_start_us)
read -r once50 once99 < <(dist "$T/this" once_start_us)
read -r lis50 lis99 < <(dist "$T/this" wake_listen_us)
over() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a - b}'; }
met() { awk -v a="$1" -v b="$2" 'BEGIN {print (a - b <= 10) ? "yes" : "**no**"}'; }
base_rows=
if [ -n "${BASE_WORKER:-}" ]; then
	read -r bw50 bw99 < <(dist "$T/base.out" wake_start_us)
	read -r bo50 bo99 < <(dist "$T/base.out" once_start_us)
	read -r bb50 _ < <(dist "$T/base.out" bare_exit_us)
	base_rows="| base worker (\`BASE_WORKER\`, $(libs "$T/base/wakeq-worker") shared objects): /wake | $bw50 | $bw99 | $(over "$bw50" "$bb50") | $(met "$bw50" "$bb50") |
| base worker: ONCE=true | $bo50 | $bo99 | $(over "$bo50" "$bb50") | $(met "$bo50" "$bb50") |"
fi

sec=$T/section
{
	echo "<!-- bench:coldstart -->"
	echo "## Cold start against a bare process launch"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
	echo "redis-server $redis_version, \`tests/bench/coldstart.sh\` (RUNS=$RUNS interleaved rounds)."
	echo "Load average at start / end: $load0 / $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Each round queues one noop job, reads the clock and posix_spawns: \`$BARE\`"
	echo "(the bare launch: exec, loader, libc, exit; until reaped), then the"
	echo "worker woken by \`POST /wake\` as soon as its port accepts, then the"
	echo "worker with \`ONCE=true\` (drains at start, no HTTP). Handler start is"
	echo "the job's \`started\` stamp (Redis TIME at the take, same clock). The"
	echo "worker maps $(libs "$WORKER") shared objects (\`ldd\`), \`$BARE\` $(libs "$BARE")."
	echo
	echo "| launch → | p50 ms | p99 ms | p50 over bare, ms | within 10 ms |"
	echo "|---|---|---|---|---|"
	echo "| bare launch (\`$BARE\`) to exit | $bare50 | $bare99 | – | – |"
	echo "| worker listening | $lis50 | $lis99 | $(over "$lis50" "$bare50") | – |"
	echo "| worker, /wake: first handler start | $wake50 | $wake99 | $(over "$wake50" "$bare50") | $(met "$wake50" "$bare50") |"
	echo "| worker, ONCE=true: first handler start | $once50 | $once99 | $(over "$once50" "$bare50") | $(met "$once50" "$bare50") |"
	[ -z "$base_rows" ] || echo "$base_rows"
	echo "<!-- /bench:coldstart -->"
} >"$sec"
cat "$sec"
[ "${NOWRITE:-0}" = 1 ] || bench_write coldstart "$sec"
