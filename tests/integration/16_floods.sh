#!/usr/bin/env bash
# 16_floods - connection floods against wakeq-api and wakeq-worker (issue
# 11, defect 4): while 1,100 slowloris connections (a header byte every
# 10 s) and 2,000 idle ones are open, and reopened as soon as they are
# closed, a well-behaved client still gets /healthz and an authenticated
# POST /v1/jobs from the API, and /healthz and /wake from the worker, each
# within 1 s. Then, one limit at a time: the header deadline is not
# extended by trickled bytes, idle connections are closed by it too, and
# one address cannot open more than PER_IP_CONNECTIONS.
#
# The floods come from 127.0.0.2 and up (tests/tools/flood.c binds each
# connection to one of 32 source addresses), so the client on 127.0.0.1 is
# another peer. Loopback only; about 40 s.
# tests: alone (the floods load the machine, and its checks time answers)
cd "$(dirname "$0")/../.."
source tests/lib/test.sh

FLOOD=$BIN/tests/tools/flood
TOKEN=flood-token
WAKE=wake-token

# The flood holds 3,100 sockets: raise the soft fd limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 4096 ]; then
	ok "# SKIP floods need 4096 open files, the hard limit is $nofile"
	exit 0
fi
start_redis

# flood_start NAME PORT ARGS...: starts a flood, waits until every first
# connect has ended. flood_stop NAME: stops it; its report is in $T/NAME.
flood_start() {
	local name=$1 port=$2 pid
	shift 2
	"$FLOOD" --port "$port" "$@" >"$T/$name" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	eval "flood_${name}_pid=$pid"
	wait_until 30 grep -q '^ready' "$T/$name" || echo "# flood $name not ready"
}
flood_stop() {
	local pid
	eval "pid=\$flood_${1}_pid"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
# flood_field NAME KIND FIELD: a number from a flood's report
flood_field() { grep "^{" "$T/$1" | jq -r "select(.kind == \"$2\") | .$3"; }

# timed NAME WANT_STATUS CURL_ARGS...: the request must be answered with
# WANT_STATUS within 1 s (connect included).
timed() {
	local name=$1 want=$2 out
	shift 2
	out=$(curl -s -o /dev/null --max-time 1 -w '%{http_code} %{time_total}' "$@")
	if [ "${out%% *}" = "$want" ]; then
		ok "$name (${out#* } s)"
	else
		not_ok "$name (want $want within 1 s, got '$out')"
	fi
}

# ---- the API under both floods at once ----------------------------------
_start_api
flood_start api "$API_PORT" --slow 1100 --idle 2000 --from 127.0.0.2 --ips 32 \
	--every 10000 --reconnect 1000
sleep 2
for i in 1 2 3; do
	timed "API /healthz under the flood ($i)" 200 "$API/healthz"
	timed "API authenticated POST /v1/jobs under the flood ($i)" 202 \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"type":"noop"}' "$API/v1/jobs"
	sleep 1
done
flood_stop api
check "the API flood had all 3,100 connections open at once" \
	test "$(( $(flood_field api slow peak_open) + $(flood_field api idle peak_open) ))" -ge 3000
check "the API lived through the flood" kill -0 "$API_PID"
timed "API /healthz after the flood" 200 "$API/healthz"
kill_wait "$API_PID"

# ---- the worker under both floods at once -------------------------------
start_worker w EXIT_ON_IDLE=false WAKE_TOKEN=$WAKE
flood_start worker "$w_PORT" --slow 1100 --idle 2000 --from 127.0.0.2 --ips 32 \
	--every 10000 --reconnect 1000
sleep 2
for i in 1 2 3; do
	timed "worker /healthz under the flood ($i)" 200 "$w_URL/healthz"
	timed "worker /wake under the flood ($i)" 202 -XPOST \
		-H "Authorization: Bearer $WAKE" "$w_URL/wake?wait=0"
	sleep 1
done
flood_stop worker
check "the worker flood had all 3,100 connections open at once" \
	test "$(( $(flood_field worker slow peak_open) + $(flood_field worker idle peak_open) ))" -ge 3000
check "the worker lived through the flood" kill -0 "$w_PID"
kill_wait "$w_PID"

# ---- the header deadline: trickled bytes do not extend it ---------------
# 20 slowloris connections with a byte every 0.5 s and 20 idle ones, for
# 6 s against HEADER_TIMEOUT=2: every one is closed, none later than ~3 s.
# header_deadline NAME WHO PORT: that flood against a server on PORT
# started with HEADER_TIMEOUT=2
header_deadline() {
	local name=$1 who=$2 age pid
	flood_start "$name" "$3" --slow 20 --idle 20 --every 500 --seconds 6
	eval "pid=\$flood_${name}_pid"
	wait "$pid"
	expect_eq "$who: every slowloris connection is closed by HEADER_TIMEOUT" 20 \
		"$(flood_field "$name" slow closed)"
	expect_eq "$who: every idle connection is closed by HEADER_TIMEOUT" 20 \
		"$(flood_field "$name" idle closed)"
	age=$(flood_field "$name" slow max_closed_age_ms)
	check "$who: closed within HEADER_TIMEOUT + 1 s (${age} ms), not reset by each byte" \
		test "${age:-99999}" -ge 1900 -a "${age:-99999}" -le 3000
}
_start_api HEADER_TIMEOUT=2
header_deadline deadline API "$API_PORT"
kill_wait "$API_PID"
start_worker wd EXIT_ON_IDLE=false HEADER_TIMEOUT=2
header_deadline wdeadline worker "$wd_PORT"
kill_wait "$wd_PID"

# ---- one address gets PER_IP_CONNECTIONS at most -------------------------
_start_api PER_IP_CONNECTIONS=50
flood_start perip "$API_PORT" --idle 200 --ips 1 --seconds 2
wait "$flood_perip_pid"
open=$(flood_field perip idle open)
check "API: one address holds at most 50 connections (holds $open)" test "${open:-999}" -le 50
check "API: the rest were closed at once ($(flood_field perip idle closed))" \
	test "$(flood_field perip idle closed)" -ge 150
timed "API: another address is still served" 200 "$API/healthz"
kill_wait "$API_PID"
# ---- a reserve that leaves no connection is refused at start-up ----------
msg=$(env PORT=0 REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN MAX_CONNECTIONS=10 CONN_RESERVE=10 \
	timeout 5 "$BIN/wakeq-api" 2>&1)
expect_eq "API: CONN_RESERVE >= MAX_CONNECTIONS exits 2" 2 "$?"
check "API: one line names CONN_RESERVE ($msg)" contains "$msg" "bad CONN_RESERVE '10'"
msg=$(env PORT=0 REDIS_URL=$REDIS_URL CONN_RESERVE=300 timeout 5 "$BIN/wakeq-worker" 2>&1)
expect_eq "worker: CONN_RESERVE >= MAX_CONNECTIONS exits 2" 2 "$?"
check "worker: one line names CONN_RESERVE ($msg)" contains "$msg" "bad CONN_RESERVE '300'"
exit 0
