#!/usr/bin/env bash
# run.sh [unit|integration|chaos|fuzz|PATTERN...] - runs the tests and ends
# with the line "N passed, N failed" (exit 1 when anything failed). A kind
# name selects that kind only; any other word selects the tests whose name
# contains it.
#
# Unit tests are cmocka programs under $BUILD/tests/unit; their summaries
# are counted test by test (those named *_db need Postgres: the integration
# test that starts it runs them). Integration tests are tests/integration/*.sh,
# each starting the real servers and binaries it needs and printing
# "ok - …" / "not ok - …" lines ("not ok - … # TODO …" is a known defect,
# as in TAP: listed at the end, not counted as a failure). Chaos tests are
# tests/chaos/*.sh, fault injection with the same output: CHAOS=quick (the
# default, in every run) is the bounded subset, CHAOS=full the long one
# (make chaos). Fuzz targets (when built with make fuzz) run briefly over
# their corpus. Integration scripts and fuzz targets run TEST_JOBS at a
# time (default: the machine's cores, at most 4); chaos scripts one by one.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CHAOS=${CHAOS:-quick}
export BUILD CHAOS
logs=$(mktemp -d /tmp/wakeq-run.XXXXXX)
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
failures=()
todos=()
why=()   # the first failed checks of each failed script, for the summary

want() { # want KIND NAME: whether the command line selects this test
	[ $# -gt 0 ] || return 0
	local sel
	[ ${#SEL[@]} -eq 0 ] && return 0
	for sel in "${SEL[@]}"; do
		case $sel in
		unit | integration | chaos | fuzz)
			[ "$sel" = "$1" ] && return 0 ;;
		*)
			case "$2" in *"$sel"*) return 0 ;; esac ;;
		esac
	done
	return 1
}
SEL=("$@")

# Unit tests of modules that talk to Redis get one real redis-server,
# started here on a free loopback port and stopped by pid on exit.
unit_redis() {
	[ -n "${UNIT_REDIS_URL:-}" ] && return 0
	local port dir
	port=$("$BUILD/tests/tools/freeport") || return 1
	dir=$logs/redis
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
		--appendonly no --loglevel warning --logfile "$dir/log" &
	UNIT_REDIS_PID=$!
	trap 'kill $UNIT_REDIS_PID 2>/dev/null; wait $UNIT_REDIS_PID 2>/dev/null; rm -rf "$logs"' EXIT
	for _ in $(seq 1 200); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && break
		sleep 0.02
	done
	UNIT_REDIS_URL=redis://127.0.0.1:$port
	export UNIT_REDIS_URL
}

run_unit() {
	local t name log p f
	unit_redis || echo "warning: cannot start redis-server for unit tests"
	for t in "$BUILD"/tests/unit/*/test_*; do
		[ -x "$t" ] || continue
		name=${t#"$BUILD"/tests/}
		want unit "$name" || continue
		case $name in
		*_db)
			# needs Postgres: run by the integration test that starts it
			echo "$name: run by integration/30_store.sh (needs Postgres)"
			continue ;;
		esac
		log=$logs/$(echo "$name" | tr / _).log
		if [ "${VALGRIND:-0}" = 1 ] && [ "$name" = unit/media/test_media ]; then
			# FFmpeg's libhwy runs instructions valgrind 3.19 lacks at
			# load time; the media module runs under ASan instead.
			echo "$name: not run under valgrind (see tests/run.sh)"
			continue
		fi
		if [ "${VALGRIND:-0}" = 1 ]; then
			timeout 600 valgrind -q --error-exitcode=99 --leak-check=full \
				--errors-for-leak-kinds=definite "$t" >"$log" 2>&1
		else
			timeout 300 "$t" >"$log" 2>&1
		fi
		local rc=$?
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
		p=${p:-0}
		f=${f:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1 # crashed, leaked or timed out before its summary
		fi
		passed=$((passed + p))
		failed=$((failed + f))
		printf '%-50s %3d passed, %d failed\n' "$name" "$p" "$f"
		if [ "$f" -gt 0 ]; then
			failures+=("$name")
			while IFS= read -r line; do
				why+=("$name: $line")
			done < <(grep -E '^\[  (FAILED|ERROR)  \] [a-z_]' "$log" | head -3)
			[ "$rc" -ne 0 ] && why+=("$name: exited $rc")
			sed 's/^/    | /' "$log" | tail -40
		fi
	done
}

# report_script NAME LOG RC SECONDS: counts a finished script's lines
report_script() {
	local name=$1 log=$2 rc=$3 secs=$4 p f line
	p=$(grep -c '^ok - ' "$log")
	f=$(grep '^not ok - ' "$log" | grep -vc '# TODO')
	while IFS= read -r line; do
		todos+=("$name: ${line#not ok - }")
	done < <(grep '^not ok - .*# TODO' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited $rc" >>"$log"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	printf '%-50s %3d passed, %d failed (%ds)\n' "$name" "$p" "$f" "$secs"
	grep '^# skip' "$log" | sed 's/^/    | /'
	if [ "$f" -gt 0 ]; then
		failures+=("$name")
		while IFS= read -r line; do
			why+=("$name: ${line#not ok - }")
		done < <(grep '^not ok - ' "$log" | grep -v '# TODO' | head -3)
		grep -E '^not ok|^#' "$log" | head -40 | sed 's/^/    | /'
		echo "    | --- last lines:"
		tail -30 "$log" | sed 's/^/    | /'
	fi
}

# lanes N RUN REPORT ITEM...: `RUN ITEM` for each ITEM, N at a time, its
# output in lane_log ITEM; as they end, in the items' order, `REPORT ITEM
# LOG RC SECONDS`. One killed before it could write its status reports 125.
lanes() {
	local n=$1 run=$2 report=$3 i next=0 log
	shift 3
	local -a items=("$@") pids=()
	for ((i = 0; i < ${#items[@]}; i++)); do
		while [ "$(running "${pids[@]}")" -ge "$n" ]; do
			wait -n "${pids[@]}" 2>/dev/null || sleep 0.1
			lanes_report
		done
		log=$(lane_log "${items[i]}")
		(
			t0=$SECONDS
			"$run" "${items[i]}" >"$log" 2>&1
			echo "$? $((SECONDS - t0))" >"$log.rc"
		) &
		pids+=($!)
		lanes_report
	done
	[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null
	for ((i = next; i < ${#items[@]}; i++)); do
		log=$(lane_log "${items[i]}")
		[ -f "$log.rc" ] || echo "125 0" >"$log.rc"
	done
	lanes_report
}

lane_log() { echo "$logs/${1//\//_}.log"; }

# running PID...: how many of them still run
running() {
	local n=0 p
	for p in "$@"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
	echo "$n"
}

# lanes_report: reports, in order, the items of lanes that have ended
lanes_report() {
	local log rc secs
	while [ "$next" -lt "${#items[@]}" ]; do
		log=$(lane_log "${items[next]}")
		[ -f "$log.rc" ] || return 0
		read -r rc secs <"$log.rc"
		"$report" "${items[next]}" "$log" "$rc" "$secs"
		next=$((next + 1))
	done
}

# run_scripts KIND TIMEOUT LANES: the scripts tests/KIND/*.sh, LANES at a
# time. Each starts its own servers on free ports (tests/tools/freeport)
# in a temp dir of its own, so they can share the machine; one whose
# checks time things that a busy machine would slow says so with a line
# "# tests: alone" and runs after the others, by itself.
run_scripts() {
	local kind=$1 n=$3 s name
	local -a shared=() alone=()
	script_limit=$2
	for s in tests/"$kind"/[0-9]*.sh; do
		[ -f "$s" ] || continue
		name=${s#tests/}
		want "$kind" "$name" || continue
		if [ "$n" -gt 1 ] && grep -q '^# tests: alone' "$s"; then
			alone+=("$name")
		else
			shared+=("$name")
		fi
	done
	lanes "$n" run_script report_script "${shared[@]}"
	lanes 1 run_script report_alone "${alone[@]}"
}
run_script() { timeout "$script_limit" bash "tests/$1"; }
report_alone() { report_script "$1 (alone)" "${@:2}"; }

# run_fuzz LANES: each fuzz target for FUZZ_SECONDS over its corpus
run_fuzz() {
	local fz
	local -a names=()
	for fz in build/fuzz/fuzz_*; do
		[ -x "$fz" ] || continue
		want fuzz "fuzz/${fz##*/}" || continue
		names+=("fuzz/${fz##*/}")
	done
	lanes "$1" run_fuzzer report_fuzzer "${names[@]}"
}
run_fuzzer() { # run_fuzzer fuzz/NAME
	local t=${1#fuzz/} corpus=tests/fuzz/corpus/${1#fuzz/fuzz_}
	mkdir -p "$logs/corpus-$t"
	timeout 120 "build/fuzz/$t" -max_total_time="${FUZZ_SECONDS:-10}" -timeout=10 \
		"$logs/corpus-$t" $( [ -d "$corpus" ] && echo "$corpus")
}
report_fuzzer() { # report_fuzzer NAME LOG RC SECONDS
	if [ "$3" -eq 0 ]; then
		passed=$((passed + 1))
		printf '%-50s   1 passed, 0 failed\n' "$1"
	else
		failed=$((failed + 1))
		failures+=("$1")
		printf '%-50s   0 passed, 1 failed\n' "$1"
		tail -30 "$2" | sed 's/^/    | /'
	fi
}

run_unit
# Integration scripts share the machine TEST_JOBS at a time (default: its
# cores, at most 4); chaos scripts, which time recoveries, run one by one.
cores=$(nproc)
jobs=${TEST_JOBS:-$((cores < 4 ? cores : 4))}
run_scripts integration "${TEST_TIMEOUT:-600}" "$jobs"
run_scripts chaos "${TEST_TIMEOUT:-$([ "$CHAOS" = full ] && echo 1200 || echo 240)}" 1
run_fuzz "$jobs"

if [ ${#todos[@]} -gt 0 ]; then
	echo "${#todos[@]} known defects (not ok # TODO, not counted as failures):"
	printf '    %s\n' "${todos[@]}"
fi
if [ ${#failures[@]} -gt 0 ]; then
	# repeated here, last, so that a log read from its tail shows why
	[ ${#why[@]} -gt 0 ] && printf '    not ok - %s\n' "${why[@]}"
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
