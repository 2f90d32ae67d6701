#!/usr/bin/env bash
# 07_floods - connection floods against the API and every worker while
# jobs flow: slowloris connections (a header byte every 10 s) and idle ones
# from 127.0.0.2 and up, reopened as soon as they are closed. The job
# pipeline must not notice (nothing lost, stuck or run twice), and a
# well-behaved client on a fresh connection still gets POST /v1/jobs
# answered within 1 s, and the workers' /healthz too. Needs
# tests/tools/flood.c (issue 11, defect 4); skipped, with a message, where
# it is not built.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
# The quick run leaves floods to tests/integration/16_floods.sh: under the
# load of a whole `make test` this scenario's own intake counted refusals
# that were not the flood's doing (an open defect of the harness, noted in
# docs/RELIABILITY.md). `make chaos` runs it.
if [ "${CHAOS:-quick}" != full ]; then
	echo "ok - floods: in make chaos only (16_floods covers them in every run)"
	exit 0
fi
FLOOD=${FLOOD_BIN:-$BIN/tests/tools/flood}
if [ ! -x "$FLOOD" ]; then
	echo "# skip: no flood tool ($FLOOD): the connection-flood scenario needs tests/tools/flood.c"
	exit 0
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
SLOW=$(pick 400 1100) IDLE=$(pick 600 2000)
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((SLOW + IDLE + 1000)) ]; then
	echo "# skip: floods need $((SLOW + IDLE + 1000)) open files, the hard limit is $nofile"
	exit 0
fi
chaos_start floods

SECS=$(pick 14 60)
D=$(pick 8 40)
chaos_load_start 40 "$SECS" 100
sleep 2
t0=$(now_us)
pids=()
for port in "$API_PORT" "${WURL[@]##*:}"; do
	"$FLOOD" --port "$port" --slow "$SLOW" --idle "$IDLE" --from 127.0.0.2 --ips 32 \
		--every 10000 --reconnect 1000 --seconds "$D" >"$T/flood.$port" 2>&1 &
	pids+=($!)
	on_exit "kill_wait $! KILL"
done
sleep 2
slow_api=0 slow_worker=0 probes=0 api_max=0
end=$((SECONDS + D - 3))
while [ $SECONDS -lt $end ]; do
	out=$(curl -s -o /dev/null --max-time 1 -w '%{http_code} %{time_total}' \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"type":"noop"}' "$API/v1/jobs")
	ms=$(awk -v t="${out#* }" 'BEGIN { printf "%d", t * 1000 }')
	[ "$ms" -gt "$api_max" ] && api_max=$ms
	[ "${out%% *}" = 202 ] || slow_api=$((slow_api + 1))
	i=$((RANDOM % NWORKERS + 1))
	[ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "${WURL[$i]}/healthz")" = 200 ] ||
		slow_worker=$((slow_worker + 1))
	probes=$((probes + 1))
	sleep 0.5
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
t1=$(now_us)
chaos_fault flood "$t0" "$t1" api+workers
peak=$(cat "$T"/flood.* | grep '^{' | jq -s 'map(.peak_open) | add')
echo "# flood: $peak connections open at the peak across the API and ${NWORKERS} workers"
expect_eq "fresh POST /v1/jobs not answered 202 within 1 s during the flood ($probes probes, slowest ${api_max} ms)" 0 "$slow_api"
expect_eq "worker /healthz not answered within 1 s during the flood ($probes probes)" 0 "$slow_worker"
chaos_load_wait
check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + 30))
chaos_audit "\"flood_peak_open\":${peak:-0},\"probe_api_max_ms\":$api_max,\"probes_unanswered\":$((slow_api + slow_worker))"
exit 0
