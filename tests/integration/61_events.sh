#!/usr/bin/env bash
# 61_events - GET /v1/jobs/{id}/events for browsers. The wire format
# (retry: hint, an id: on every event, `active` when a job starts), every
# state change of a job a real worker retries (active, retrying, queued,
# active, then the end), a reconnect after the end answered 204 (so
# EventSource stops instead of opening a new stream every few seconds),
# the token as ?access_token= or the wakeq_token cookie (GET and HEAD of
# the stream only), and CORS_ORIGINS. A real EventSource client (the npm
# `eventsource` package, installed into $BUILD/npm) follows a job to its
# end and stops.
set -u
. "$(dirname "$0")/../lib/test.sh"

EVENTSOURCE_VERSION=4.1.1
NPM_DIR=$BIN/npm
installed() { [ "$(node -p "require('$NPM_DIR/node_modules/$1/package.json').version" 2>/dev/null)" = "$2" ]; }
if ! installed eventsource "$EVENTSOURCE_VERSION"; then
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		not_ok "node and npm are needed to install eventsource (container/deps.sh install test)"
		exit 1
	fi
	mkdir -p "$NPM_DIR"
	if ! timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
		"eventsource@$EVENTSOURCE_VERSION" >"$T/npm.log" 2>&1; then
		not_ok "cannot install eventsource@$EVENTSOURCE_VERSION from the npm registry"
		diag "$T/npm.log"
		exit 1
	fi
fi
check "eventsource $EVENTSOURCE_VERSION is installed" installed eventsource "$EVENTSOURCE_VERSION"
start_redis

api_token ev-token
ORIGIN=https://app.example.com
post() { curl -s -H "$H" -H 'Content-Type: application/json' -d "$1" "$API/v1/jobs" | jq -r .id; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
es() { # es URL MODE OUT [LIMIT_MS]: a real EventSource in the background; sets ES
	NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/tools/sse_client.js" "$1" "$2" "$TOKEN" \
		"${4:-15000}" >"$3" 2>"$3.err" &
	ES=$!
	on_exit "kill_wait $ES"
}
types() { jq -r '.type + (if .data.status then ":" + .data.status else "" end)' "$1" | tr '\n' ' ' | sed 's/ $//'; }

start_worker w QUEUES=default IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false BACKOFF_BASE=0.3 LOG_LEVEL=warn
_start_api CORS_ORIGINS="$ORIGIN,http://localhost:3000" WAKE_URL="$w_URL/wake"

# ---- a real EventSource follows a job a real worker retries, to its end -----------
ID=$(wq enqueue fail --max-attempts 2 --payload '{"message":"once more","retryable":true}' 2>/dev/null)
es "$API/v1/jobs/$ID/events?access_token=$TOKEN" query "$T/es1.jsonl"
wait_until 5 grep -q '"type":"state"' "$T/es1.jsonl"
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
wait "$ES"
rc=$?
expect_eq "EventSource stopped by itself (exit 0, not the timeout)" 0 "$rc"
expect_eq "every state change, active included, then the end, then closed" \
	"open state:queued update:active update:retrying update:queued update:active end:failed conn-error conn-error closed" \
	"$(types "$T/es1.jsonl")"
expect_eq "one stream only: the reconnect after the end was refused" 1 "$(grep -c '"type":"open"' "$T/es1.jsonl")"
expect_eq "the stream closed after the end: EventSource reconnects, is refused with 204 and closes" \
	"null 0|204 2" "$(jq -r 'select(.type == "conn-error") | "\(.code) \(.readyState)"' "$T/es1.jsonl" | tr '\n' '|' | sed 's/|$//')"
gap=$(jq -s '(map(select(.type == "closed"))[0].t) - (map(select(.type == "end"))[0].t)' "$T/es1.jsonl")
check "it reconnected once, after the retry: hint of 2 s (${gap} ms)" test "$gap" -ge 1800 -a "$gap" -lt 6000
check "ids rise with each event" jq -s -e '[.[] | select(.id) | .id | tonumber] | . == sort and length == 6' "$T/es1.jsonl"
fin=$(rcli hget "wakeq:{default}:job:$ID" finished)
expect_eq "the end's id is the job's finish time (µs)" "$fin" "$(jq -r 'select(.type == "end") | .id' "$T/es1.jsonl")"

# ---- a stream cut mid-job (the instance replaced, a request timeout) resumes ----------
# Cloud Run ends a request at timeoutSeconds and replaces instances: the
# browser's EventSource reconnects after retry: with Last-Event-ID and,
# from whichever instance answers, gets the job's state again and then its
# end. (Enqueued straight into Redis: the API would wake the worker at once.)
AP=$API_PORT
ID4=$(wq enqueue noop 2>/dev/null)
es "$API/v1/jobs/$ID4/events?access_token=$TOKEN" query "$T/es4.jsonl" 20000
wait_until 5 grep -q '"type":"state"' "$T/es4.jsonl"
stop_api # the stream is cut with the job still queued
_start_api CORS_ORIGINS="$ORIGIN,http://localhost:3000" WAKE_URL="$w_URL/wake" PORT="$AP"
wait_until 10 test "$(grep -c '"type":"open"' "$T/es4.jsonl")" -ge 2
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
wait "$ES"
expect_eq "a stream cut mid-job: EventSource stopped by itself (exit 0, not the timeout)" 0 "$?"
expect_eq "... it resumed on the new instance: the state again, then active and the end" \
	"open state:queued conn-error open state:queued update:active end:done" \
	"$(types "$T/es4.jsonl" | sed 's/ conn-error conn-error closed$//')"
expect_eq "... and stopped after the end (refused with 204)" "204" \
	"$(jq -r 'select(.type == "conn-error" and .code != null) | .code' "$T/es4.jsonl" | tail -1)"

# ---- the wire format, with curl ------------------------------------------------------
# (enqueued straight into Redis: the API would wake the worker at once)
wait_until 10 sh -c "curl -fs '$w_URL/status' | jq -e '.draining == false' >/dev/null"
ID2=$(wq enqueue noop 2>/dev/null)
curl -sN -H "$H" "$API/v1/jobs/$ID2/events" >"$T/wire.txt" &
C=$!
wait_until 5 grep -q '^event: state' "$T/wire.txt"
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
wait_until 10 grep -q '^event: end' "$T/wire.txt"
wait "$C"
expect_eq "the stream opens with retry: 2000, then an id and the state" "retry: 2000|id|event: state" \
	"$(sed -n '1p' "$T/wire.txt")|$(sed -n '2p' "$T/wire.txt" | cut -d: -f1)|$(sed -n '3p' "$T/wire.txt")"
check "every event line follows an id: line of digits" awk \
	'/^event: / && prev !~ /^id: [0-9]+$/ {bad = 1} {prev = $0} END {exit bad}' "$T/wire.txt"
expect_eq "a noop job: state, active, end" "state update end" \
	"$(sed -n 's/^event: //p' "$T/wire.txt" | tr '\n' ' ' | sed 's/ $//')"
END2=$(grep -B1 '^event: end' "$T/wire.txt" | sed -n 's/^id: //p')
expect_eq "Last-Event-ID at the end: 204" 204 "$(code -H "$H" -H "Last-Event-ID: $END2" "$API/v1/jobs/$ID2/events")"
expect_eq "Last-Event-ID past the end: 204" 204 "$(code -H "$H" -H "Last-Event-ID: $((END2 + 1))" "$API/v1/jobs/$ID2/events")"
r=$(curl -s -H "$H" -H "Last-Event-ID: $((END2 - 1))" "$API/v1/jobs/$ID2/events")
expect_eq "an older Last-Event-ID gets the end again" "retry: 2000|id: $END2|event: end" \
	"$(sed -n 1p <<<"$r")|$(sed -n 2p <<<"$r")|$(sed -n 3p <<<"$r")"
expect_eq "no Last-Event-ID: the end again" "event: end" "$(grep '^event:' <<<"$(curl -s -H "$H" "$API/v1/jobs/$ID2/events")")"
expect_eq "a job that never existed: 404" 404 \
	"$(code -H "$H" -H "Last-Event-ID: 1" "$API/v1/jobs/01a20466-181e-7014-b516-77142d772f9d/events")"

# ---- tokens a browser can send --------------------------------------------------------
ID3=$(post '{"type":"noop","delay_s":3600}')
ev="$API/v1/jobs/$ID3/events"
expect_eq "no token: 401" 401 "$(code "$ev")"
expect_eq "a wrong access_token: 401" 401 "$(code "$ev?access_token=nope")"
expect_eq "a wrong cookie: 401" 401 "$(code -H 'Cookie: wakeq_token=nope' "$ev")"
expect_eq "HEAD with access_token: 200" 200 "$(code -I "$ev?access_token=$TOKEN")"
expect_eq "HEAD with the cookie: 200" 200 "$(code -I -H "Cookie: other=1; wakeq_token=$TOKEN" "$ev")"
expect_eq "access_token does not open other routes (GET /v1/jobs/{id})" 401 "$(code "$API/v1/jobs/$ID3?access_token=$TOKEN")"
expect_eq "nor a POST" 401 "$(code -H 'Content-Type: application/json' -d '{"type":"noop"}' "$API/v1/jobs?access_token=$TOKEN")"
expect_eq "nor the cookie a DELETE" 401 "$(code -X DELETE -H "Cookie: wakeq_token=$TOKEN" "$API/v1/jobs/$ID3")"
# (once the last drain is over: a running one would take the job at once)
wait_until 10 sh -c "curl -fs '$w_URL/status' | jq -e '.draining == false' >/dev/null"
ID4=$(wq enqueue noop 2>/dev/null)
es "$API/v1/jobs/$ID4/events" cookie "$T/es2.jsonl"
wait_until 5 grep -q '"type":"state"' "$T/es2.jsonl"
curl -fs -XPOST "$w_URL/wake?wait=0" >/dev/null
wait "$ES"
expect_eq "EventSource with the cookie follows a job to its end and stops" \
	"0 open state:queued update:active end:done conn-error conn-error closed" "$? $(types "$T/es2.jsonl")"

# ---- CORS --------------------------------------------------------------------------------
h=$(curl -s -D - -o /dev/null -H "$H" -H "Origin: $ORIGIN" "$API/v1/queues" | tr -d '\r')
expect_eq "an allowed origin: Access-Control-Allow-Origin names it, with credentials" "$ORIGIN true Origin" \
	"$(sed -n 's/^Access-Control-Allow-Origin: //Ip' <<<"$h") $(sed -n 's/^Access-Control-Allow-Credentials: //Ip' <<<"$h") $(sed -n 's/^Vary: //Ip' <<<"$h")"
h=$(curl -s -D - -o /dev/null -H "$H" -H "Origin: https://evil.example" "$API/v1/queues" | tr -d '\r')
expect_eq "another origin: no Access-Control-Allow-Origin" "" "$(sed -n 's/^Access-Control-Allow-Origin: //Ip' <<<"$h")"
h=$(curl -s -D - -o /dev/null -H "Origin: $ORIGIN" "$ev?access_token=$TOKEN" --max-time 1 | tr -d '\r')
expect_eq "the event stream too" "$ORIGIN" "$(sed -n 's/^Access-Control-Allow-Origin: //Ip' <<<"$h")"
h=$(curl -s -D - -o /dev/null -X OPTIONS -H "Origin: http://localhost:3000" \
	-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type' \
	"$API/v1/jobs" | tr -d '\r')
expect_eq "a preflight from an allowed origin: 204 without a token" 204 "$(head -1 <<<"$h" | cut -d' ' -f2)"
check "it allows POST and the Authorization header" sh -c \
	"grep -qi '^Access-Control-Allow-Methods: .*POST' <<'E'
$h
E
grep -qi '^Access-Control-Allow-Headers: .*Authorization' <<'E'
$h
E"
h=$(curl -s -D - -o /dev/null -X OPTIONS -H "Origin: https://evil.example" \
	-H 'Access-Control-Request-Method: POST' "$API/v1/jobs" | tr -d '\r')
expect_eq "a preflight from another origin gets no CORS headers" "" "$(sed -n 's/^Access-Control-Allow-Origin: //Ip' <<<"$h")"
kill_wait "$API_PID"
_start_api
h=$(curl -s -D - -o /dev/null -H "$H" -H "Origin: $ORIGIN" "$API/v1/queues" | tr -d '\r')
expect_eq "without CORS_ORIGINS: no CORS header" "" "$(grep -i '^Access-Control' <<<"$h")"
[ "$_t_failed" = 0 ] || { diag "$T/api.log"; diag "$T/es1.jsonl"; cat "$T"/*.err 2>/dev/null | sed 's/^/# /'; }
exit 0
