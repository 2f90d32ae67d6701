#!/usr/bin/env bash
# run.sh - the `make bench` entry point: runs every tests/bench/*.sh but
# itself, or only those named (`make bench BENCH=core`, or
# `tests/bench/run.sh core media`). Each benchmark writes its own section
# of docs/BENCHMARKS.md. Exit 1 when any benchmark failed.
set -u
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}

names=()
if [ $# -gt 0 ]; then
	for a in "$@"; do
		a=${a##*/}
		names+=("${a%.sh}")
	done
else
	for f in tests/bench/*.sh; do
		n=$(basename "$f" .sh)
		[ "$n" = run ] || names+=("$n")
	done
fi

failed=()
for n in "${names[@]}"; do
	f=tests/bench/$n.sh
	if [ ! -f "$f" ]; then
		echo "bench: no benchmark '$n' (tests/bench/$n.sh)" >&2
		failed+=("$n")
		continue
	fi
	echo "== bench $n (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	t0=$(date +%s)
	if bash "$f"; then
		echo "== bench $n: ok in $(( $(date +%s) - t0 )) s"
	else
		echo "== bench $n: FAILED" >&2
		failed+=("$n")
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed: ${failed[*]}" >&2
	exit 1
fi
