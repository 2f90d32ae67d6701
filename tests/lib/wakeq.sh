# wakeq.sh - start the real wakeq binaries for tests. Source after
# servers.sh and tap.sh.
#
#   start_worker NAME [VAR=VALUE...]  build/wakeq-worker on a free port;
#                                     sets NAME_PID, NAME_PORT, NAME_URL;
#                                     log in $T/NAME.log
#   wq ARGS                           build/wakeq against $REDIS_URL
#   job_field ID FIELD                one field of `wakeq status ID`

start_worker() {
	local name=$1 port pid i
	shift
	port=$($FREEPORT)
	env PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" "$@" \
		"$BIN/wakeq-worker" >"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	eval "${name}_PID=$pid ${name}_PORT=$port ${name}_URL=http://127.0.0.1:$port"
	for i in $(seq 1 250); do
		curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	echo "# worker $name did not start:"
	diag "$T/$name.log"
	return 1
}

wq() { REDIS_URL=$REDIS_URL "$BIN/wakeq" "$@"; }

job_field() { wq status "$1" | jq -r ".$2"; }

# count_status QUEUE STATUS: jobs of QUEUE in STATUS (wakeq stats --json)
count_status() { wq stats --json --queue "$1" | jq -r ".\"$1\".$2"; }

# exited PID: whether a process we started has exited.
exited() { ! kill -0 "$1" 2>/dev/null; }
