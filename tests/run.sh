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

# run_scripts KIND TIMEOUT LANES: the scripts tests/KIND/*.sh, LANES at a
# time. Each starts its own servers on free ports (tests/tools/freeport)
# in a temp dir of its own, so they can share the machine; one whose
# checks time things that a busy machine would slow says so with a line
# "# tests: alone" and runs after the others, by itself. Results are
# reported in the scripts' order whatever order they end in.
run_scripts() {
	local kind=$1 limit=$2 lanes=$3 s name log i next=0 rc secs
	local -a names=() logs_=() alone=() pids=()
	for s in tests/"$kind"/[0-9]*.sh; do
		[ -f "$s" ] || continue
		name=${s#tests/}
		want "$kind" "$name" || continue
		if [ "$lanes" -gt 1 ] && grep -q '^# tests: alone' "$s"; then
			alone+=("$s")
			continue
		fi
		names+=("$name")
	done
	# in lanes: each script's exit status and seconds land in LOG.rc
	for ((i = 0; i < ${#names[@]}; i++)); do
		name=${names[i]}
		log=$logs/$kind-$(basename "$name").log
		logs_+=("$log")
		while [ "$(running "${pids[@]}")" -ge "$lanes" ]; do
			wait -n "${pids[@]}" 2>/dev/null || sleep 0.1
			report_ready
		done
		(
			t0=$SECONDS
			timeout "$limit" bash "tests/$name" >"$log" 2>&1
			echo "$? $((SECONDS - t0))" >"$log.rc"
		) &
		pids+=($!)
		report_ready
	done
	[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null
	for log in "${logs_[@]}"; do # a lane killed before it could say: failed
		[ -f "$log.rc" ] || echo "125 0" >"$log.rc"
	done
	report_ready
	for s in "${alone[@]}"; do
		name=${s#tests/}
		log=$logs/$kind-$(basename "$s").log
		local t0=$SECONDS
		timeout "$limit" bash "$s" >"$log" 2>&1
		rc=$?
		report_script "$name (alone)" "$log" "$rc" $((SECONDS - t0))
	done
}

# running PID...: how many of them still run
running() {
	local n=0 p
	for p in "$@"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
	echo "$n"
}

# report_ready: reports, in order, the scripts in lanes that have ended
report_ready() {
	while [ "$next" -lt "${#logs_[@]}" ] && [ -f "${logs_[next]}.rc" ]; do
		read -r rc secs <"${logs_[next]}.rc"
		report_script "${names[next]}" "${logs_[next]}" "$rc" "$secs"
		next=$((next + 1))
	done
}

# run_fuzz LANES: each fuzz target for FUZZ_SECONDS over its corpus, LANES
# at a time; reported in order
run_fuzz() {
	local lanes=$1 fz name corpus log i next=0
	local -a fzs=() pids=()
	for fz in build/fuzz/fuzz_*; do
		[ -x "$fz" ] || continue
		want fuzz "fuzz/${fz##*/}" || continue
		fzs+=("$fz")
	done
	for ((i = 0; i < ${#fzs[@]}; i++)); do
		fz=${fzs[i]}
		corpus=tests/fuzz/corpus/${fz##*/fuzz_}
		log=$logs/${fz##*/}.log
		mkdir -p "$logs/corpus-${fz##*/}"
		while [ "$(running "${pids[@]}")" -ge "$lanes" ]; do
			wait -n "${pids[@]}" 2>/dev/null || sleep 0.1
			fuzz_ready
		done
		(
			timeout 120 "$fz" -max_total_time="${FUZZ_SECONDS:-10}" -timeout=10 \
				"$logs/corpus-${fz##*/}" $( [ -d "$corpus" ] && echo "$corpus") >"$log" 2>&1
			echo $? >"$log.rc"
		) &
		pids+=($!)
	done
	[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null
	fuzz_ready
}

# fuzz_ready: reports, in order, the fuzz targets that have ended
fuzz_ready() {
	local log rc
	while [ "$next" -lt "${#fzs[@]}" ]; do
		name=fuzz/${fzs[next]##*/}
		log=$logs/${fzs[next]##*/}.log
		[ -f "$log.rc" ] || return 0
		read -r rc <"$log.rc"
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1))
			printf '%-50s   1 passed, 0 failed\n' "$name"
		else
			failed=$((failed + 1))
			failures+=("$name")
			printf '%-50s   0 passed, 1 failed\n' "$name"
			tail -30 "$log" | sed 's/^/    | /'
		fi
		next=$((next + 1))
	done
}

run_unit
# Integration scripts share the machine TEST_JOBS at a time (default: its
# cores, at most 4); chaos scripts, which time recoveries, run one by one.
lanes=${TEST_JOBS:-$(nproc)}
[ "$lanes" -gt 4 ] && [ -z "${TEST_JOBS:-}" ] && lanes=4
run_scripts integration "${TEST_TIMEOUT:-600}" "$lanes"
run_scripts chaos "${TEST_TIMEOUT:-$([ "$CHAOS" = full ] && echo 1200 || echo 240)}" 1
run_fuzz "$lanes"

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
