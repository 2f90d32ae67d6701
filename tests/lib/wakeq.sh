# wakeq.sh - start the real wakeq binaries for tests. Source after
# servers.sh and tap.sh.
#
#   start_worker NAME [VAR=VALUE...]  build/wakeq-worker on a free port;
#                                     sets NAME_PID, NAME_PORT, NAME_URL;
#                                     log in $T/NAME.log
#   _start_api [VAR=VALUE...]         build/wakeq-api on 127.0.0.1, on the
#                                     port it picks (PORT=0: no race with
#                                     other processes for a free port);
#                                     API_TOKEN=$TOKEN, no reconcile timer;
#                                     sets API, API_PORT, API_PID; log
#                                     appended to $T/api.log
#   stop_api                          SIGTERM and wait
#   start_gcp [ARGS...]               tests/tools/fakegcp (metadata server,
#                                     Cloud Tasks, Cloud Storage) on a free
#                                     port; sets G (its base URL), G_PID
#   wq ARGS                           build/wakeq against $REDIS_URL
#   API_BIN, CT                       build/wakeq-api; the JSON content
#                                     type header for curl -H
#   api_token TOKEN                   the API's bearer token: sets TOKEN
#                                     and H (its header for curl -H)
#   job_field ID FIELD                one field of `wakeq status ID`
#   api_job ID / api_field ID FIELD   the job as GET $API/v1/jobs/ID answers
#                                     (bearer $TOKEN), or one jq field of it
#   api_post PATH BODY [CURL ARGS]    POST BODY (JSON) to $API/PATH with the
#                                     bearer $TOKEN; prints the answer
#   wait_final ID [SECONDS]           until the API has it done, failed or
#                                     cancelled (20 s)
#   spans QUEUE                       its done jobs as "start end group" lines
#                                     (epoch seconds with µs; group "-" for
#                                     none), newest first
#   max_open GROUP <SPANS             the most of those lines of GROUP ("":
#                                     all) open at once
#   start_hitcount NAME               tests/tools/hitcount, logging a line
#                                     "NAME KEY START..." per call to
#                                     $T/NAME.hits; sets NAME_HIT (its /hit
#                                     URL)
#   post_keyed KEY                    POSTs one noop job with idempotency
#                                     key KEY to $API (bearer $TOKEN, 10 s
#                                     at most); prints "STATUS MS CODE ID":
#                                     HTTP status, ms taken, error code and
#                                     job id ("-" when none)
#   deadline_refusals [PORT]          how many enqueue scripts the Redis on
#                                     PORT ($REDIS_PORT) refused as past
#                                     their deadline (DEADLINE errors)

API_BIN=$BIN/wakeq-api
CT="Content-Type: application/json"
api_token() { TOKEN=$1 H="Authorization: Bearer $1"; }

# The PORT to start a binary with, given its VAR=VALUE arguments: 0 (it
# picks one and logs it in its "listening" line, at info), or with a
# quieter LOG_LEVEL, where that line is not logged, a free port picked here.
_start_port() {
	local a
	for a in "$@"; do
		case "$a" in LOG_LEVEL=warn* | LOG_LEVEL=error*) $FREEPORT; return ;; esac
	done
	echo 0
}

start_worker() {
	local name=$1 port= pid i p0
	shift
	p0=$(_start_port "$@")
	[ "$p0" = 0 ] || port=$p0
	env PORT="$p0" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" "$@" \
		"$BIN/wakeq-worker" >"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	_up() { # listening and healthy; 2: exited
		[ -n "$port" ] || port=$(_logged_port "$T/$name.log" 0)
		[ -n "$port" ] && curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 2
		return 1
	}
	_up_or_gone() { _up; [ $? != 1 ]; }
	wait_until "$START_S" _up_or_gone && _up
	i=$?
	eval "${name}_PID=$pid ${name}_PORT=$port ${name}_URL=http://127.0.0.1:$port"
	[ "$i" = 0 ] && return 0
	echo "# worker $name did not start:"
	diag "$T/$name.log"
	return 1
}

# The port a process logged ("... listening port=N") after line $2 of $1.
_logged_port() {
	tail -n +"$(($2 + 1))" "$1" 2>/dev/null |
		sed -n -e 's/.* listening port=\([0-9]*\).*/\1/p' \
			-e '/listening/s/.*"port":"\([0-9]*\)".*/\1/p' | head -1
}

_start_api() {
	local log=$T/api.log n0 i p0
	touch "$log"
	n0=$(wc -l <"$log")
	p0=$(_start_port "$@")
	env PORT="$p0" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN="${TOKEN:-}" \
		RECONCILE_INTERVAL=0 "$@" "$BIN/wakeq-api" >>"$log" 2>&1 &
	API_PID=$!
	on_exit "kill_wait $API_PID"
	API_PORT=
	_api_port() { # the port known, or the API gone
		[ "$p0" != 0 ] && API_PORT=$p0 || API_PORT=$(_logged_port "$log" "$n0")
		[ -n "$API_PORT" ] || ! kill -0 "$API_PID" 2>/dev/null
	}
	wait_until "$START_S" _api_port
	API=http://127.0.0.1:$API_PORT
	[ -n "$API_PORT" ] && wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" && return 0
	echo "# api did not start"
	diag "$log"
	exit 1
}
stop_api() { kill_wait "$API_PID"; }

start_gcp() { start_fake G "$BIN/tests/tools/fakegcp" "$@"; } # sets G (base URL), G_PID

wq() { REDIS_URL=$REDIS_URL "$BIN/wakeq" "$@"; }

job_field() { wq status "$1" | jq -r ".$2"; }

api_job() { curl -s -H "Authorization: Bearer ${TOKEN:-}" "$API/v1/jobs/$1"; }
api_field() { api_job "$1" | jq -r ".$2"; }
api_post() { curl -s -H "Authorization: Bearer ${TOKEN:-}" -H "$CT" -d "$2" "${@:3}" "$API$1"; }
_api_final() { case "$(api_field "$1" status)" in done | failed | cancelled) return 0 ;; esac; return 1; }
wait_final() { wait_until "${2:-20}" _api_final "$1"; }

spans() {
	wq jobs --queue "$1" --state done --limit 10000 --json | jq -r '
		def ts: (.[0:19] + "Z" | fromdateiso8601) + ((.[20:26]) | tonumber) / 1e6;
		.[] | "\(.started_at | ts) \(.finished_at | ts) \(.group // "-")"'
}
max_open() {
	awk -v g="$1" 'g == "" || $3 == g { printf "%.6f 1\n%.6f -1\n", $1, $2 }' |
		sort -k1,1n -k2,2n | awk '{ n += $2; if (n > m) m = n } END { print m + 0 }'
}

start_hitcount() {
	"$BIN/tests/tools/hitcount" "$T/$1.hits" --name "$1" >"$T/$1.port" 2>"$T/$1.err" &
	on_exit "kill_wait $!"
	wait_until "$START_S" test -s "$T/$1.port" || { diag "$T/$1.err"; exit 1; }
	eval "$1_HIT=http://127.0.0.1:$(head -1 "$T/$1.port")/hit"
}

post_keyed() {
	local t0 r ms
	t0=$(date +%s%N)
	r=$(curl -s -w ' %{http_code}' --max-time 10 -H "Authorization: Bearer ${TOKEN:-}" -H "$CT" \
		-d "{\"type\":\"noop\",\"payload\":{\"key\":\"$1\"},\"idempotency_key\":\"$1\"}" "$API/v1/jobs")
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "${r##* } $ms $(jq -r '.error.code // "-"' <<<"${r% *}" 2>/dev/null) $(jq -r '.id // "-"' <<<"${r% *}" 2>/dev/null)"
}

deadline_refusals() {
	redis-cli -p "${1:-$REDIS_PORT}" info errorstats |
		sed -n 's/^errorstat_DEADLINE:count=\([0-9]*\).*/\1/p'
}

# count_status QUEUE STATUS: jobs of QUEUE in STATUS (wakeq stats --json)
count_status() { wq stats --json --queue "$1" | jq -r ".\"$1\".$2"; }

# exited PID: whether a process we started has exited.
exited() { ! kill -0 "$1" 2>/dev/null; }
