# runmodel.sh - services under the Cloud Run model (tests/tools/runmodel.c,
# docs/CLOUDRUN.md). Source after servers.sh and tap.sh.
#
#   start_service NAME PROGRAM [MODEL-ARGS...] -- [VAR=VALUE...]
#                       the model's proxy in front of PROGRAM; sets NAME_URL
#                       (the proxy) and NAME_MPID; the instances log to
#                       $T/NAME.log, the model to $T/model-NAME.log
#   stop_service NAME   SIGTERM to the model: its instances get SIGTERM
#   mstat NAME [JQ]     NAME's /_model/stats, through jq (default .)
#   mstat_is NAME JQ WANT   whether mstat NAME JQ prints WANT (for wait_until)
#   inst_pid NAME [JQ-FILTER]   pid of an instance (first matching)
#   proc_state PID      R, S, T (frozen: SIGSTOP), or gone
#   state_is PID WANT   whether proc_state PID prints WANT (for wait_until)
#   monitor_start FILE  redis-cli MONITOR of $REDIS_PORT into FILE
#   client_cmds FILE    the lines of FILE that are commands sent by clients
#                       (an EVALSHA is one; what a script runs is left out)

MODEL_BIN=$BIN/tests/tools/runmodel

start_service() {
	local name=$1 prog=$2 margs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do margs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	: >"$T/$name.port"
	env "$@" "$MODEL_BIN" --name "$name" --log "$T/$name.log" "${margs[@]}" -- "$prog" \
		>"$T/$name.port" 2>>"$T/model-$name.log" &
	eval "${name}_MPID=$!"
	on_exit "kill_wait $!"
	wait_until "$START_S" test -s "$T/$name.port"
	eval "${name}_URL=http://127.0.0.1:$(head -1 "$T/$name.port")"
}

stop_service() {
	local pid
	eval "pid=\$${1}_MPID"
	kill_wait "$pid"
}

mstat() {
	local url
	eval "url=\$${1}_URL"
	curl -s "$url/_model/stats" | jq -r "${2:-.}"
}

mstat_is() { [ "$(mstat "$1" "$2")" = "$3" ]; }

inst_pid() { mstat "$1" "[.instances[] | select(${2:-true})][0].pid // empty"; }

proc_state() {
	if [ -r "/proc/$1/stat" ]; then
		awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo gone
	else
		echo gone
	fi
}

state_is() { [ "$(proc_state "$1")" = "$2" ]; }

monitor_start() {
	rcli monitor >"$1" 2>/dev/null &
	MONITOR_PID=$!
	on_exit "kill_wait $MONITOR_PID"
	wait_until 2 test -s "$1"
}

client_cmds() { grep -E '^[0-9.]+ \[[0-9]+ [0-9.]+:[0-9]+\]' "$1"; }
