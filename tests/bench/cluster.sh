#!/usr/bin/env bash
# cluster.sh - drain throughput of 3 workers over a 3-master Redis
# Cluster (redis+cluster://) against the same 3 workers over one Redis,
# in the same run: issue 14, "Scale-out beyond one Redis".
#
#   tests/bench/cluster.sh                      figures into docs/BENCHMARKS.md
#   NOWRITE=1 N=3000 RUNS=1 tests/bench/cluster.sh   quick look
#
# Each run: N no-op jobs pre-enqueued, spread evenly over 3 queues that the
# cluster serves from 3 different masters (the same names on the single
# Redis); 3 real wakeq-worker processes, each serving all 3 queues
# (CONCURRENCY=C), are woken at once (POST /wake, held); the drain's time
# is the longest held wake less the idle timeout that ends it. Jobs/s is
# N over that time; the median of RUNS runs per setup, the setups
# interleaved so that a change in the machine's load hits both.
set -eu
. "$(dirname "$0")/../lib/bench.sh"

N=${N:-60000}                 # jobs per run (over the 3 queues)
RUNS=${RUNS:-3}
C=${C:-32}                    # CONCURRENCY of each worker
DRAIN_IDLE=${DRAIN_IDLE:-0.5} # IDLE_TIMEOUT (subtracted)

WORKER=$BIN/wakeq-worker
TOOL=$BIN/tests/tools/bench_core
bench_need "$WORKER" "$TOOL" "$FREEPORT" -- jq

t_tmpdir
log() { echo "# $*" >&2; }
mkdir -p "$T/bin"
cp "$WORKER" "$T/bin/wakeq-worker"
WORKER=$T/bin/wakeq-worker
load0=$(cut -d' ' -f1-3 /proc/loadavg)

start_redis
ONE_URL=$REDIS_URL ONE_PORT=$REDIS_PORT
start_redis_cluster 3 0
CL_URL=$REDIS_URL
# three queues, one on each master
QS=() seen=" "
for i in $(seq 0 200); do
	o=$(cluster_owner "wakeq:{b$i}:x")
	case "$seen" in *" $o "*) continue ;; esac
	seen="$seen$o "
	QS+=("b$i")
	[ ${#QS[@]} -lt 3 ] || break
done
[ ${#QS[@]} = 3 ] || { echo "cluster.sh: no 3 queues on 3 masters" >&2; exit 1; }
QUEUES=$(IFS=,; echo "${QS[*]}")
log "queues $QUEUES; cluster ${CLUSTER_PORTS[*]}; one redis $ONE_PORT"

flush() { # flush URL
	if [ "$1" = "$ONE_URL" ]; then
		redis-cli -p "$ONE_PORT" flushall >/dev/null
	else
		for p in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
	fi
}

# run URL: one drain; prints jobs/s
run() {
	local url=$1 q i pids=() ports=() wakes=() t0 t1 done=0 p
	flush "$url"
	for q in "${QS[@]}"; do "$TOOL" enqueue "$url" "$q" $((N / 3)) 1000 >/dev/null; done
	for i in 1 2 3; do
		p=$($FREEPORT)
		env PORT="$p" HOST=127.0.0.1 REDIS_URL="$url" QUEUES="$QUEUES" CONCURRENCY="$C" \
			IDLE_TIMEOUT="$DRAIN_IDLE" EXIT_ON_IDLE=false LOG_LEVEL=warn \
			"$WORKER" >>"$T/worker.log" 2>&1 &
		pids+=($!)
		ports+=("$p")
		on_exit "kill_wait $!"
	done
	for p in "${ports[@]}"; do
		for i in $(seq 1 250); do
			curl -sf -o /dev/null "http://127.0.0.1:$p/healthz" && break
			sleep 0.02
		done
	done
	t0=$(date +%s%6N)
	for i in 0 1 2; do
		curl -fs -X POST "http://127.0.0.1:${ports[$i]}/wake" >"$T/wake.$i" &
		wakes+=($!)
	done
	wait "${wakes[@]}" || true
	t1=$(date +%s%6N)
	for i in 0 1 2; do
		done=$((done + $(jq -r '.drain.done // 0' "$T/wake.$i")))
	done
	for p in "${pids[@]}"; do kill_wait "$p"; done
	[ "$done" -ge $((N / 3 * 3)) ] || { echo "cluster.sh: $done of $((N / 3 * 3)) jobs drained" >&2; exit 1; }
	awk -v n="$done" -v us=$((t1 - t0)) -v idle="$DRAIN_IDLE" \
		'BEGIN { s = us / 1e6 - idle; if (s <= 0) s = 0.001; printf "%.0f\n", n / s }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: >"$T/one"
: >"$T/cl"
for r in $(seq 1 "$RUNS"); do
	run "$ONE_URL" >>"$T/one"
	run "$CL_URL" >>"$T/cl"
	log "run $r: one redis $(tail -1 "$T/one") jobs/s, cluster $(tail -1 "$T/cl") jobs/s"
done
one=$(median <"$T/one")
cl=$(median <"$T/cl")
ratio=$(awk -v a="$cl" -v b="$one" 'BEGIN { printf "%.2f", a / b }')
load1=$(cut -d' ' -f1-3 /proc/loadavg)
log "median: one redis $one jobs/s, 3-master cluster $cl jobs/s (x$ratio)"

[ -z "${NOWRITE:-}" ] || exit 0
cat >"$T/section" <<EOF
<!-- bench:cluster -->
## Redis Cluster: 3 workers over 3 masters vs one Redis

\`tests/bench/cluster.sh\`, $(date -u +%Y-%m-%d), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),
load average $load0 at start, $load1 at end; Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), no persistence.
$N no-op jobs over 3 queues (one on each master of the cluster; the same
names on the single Redis), 3 \`wakeq-worker\` processes each serving all
3 queues with CONCURRENCY=$C, woken at once; time = the longest held
\`/wake\` less IDLE_TIMEOUT ($DRAIN_IDLE s); median of $RUNS runs, the two
setups interleaved.

| setup | jobs/s (median) | runs |
|---|---|---|
| one Redis (\`redis://\`) | $one | $(paste -sd' ' "$T/one") |
| 3-master cluster (\`redis+cluster://\`) | $cl | $(paste -sd' ' "$T/cl") |
| ratio cluster / one | $ratio | |

All servers and workers share this machine's CPUs: the cluster's gain is
bounded by the cores left to its three redis-server processes.
<!-- /bench:cluster -->
EOF
bench_write cluster "$T/section"
