#!/usr/bin/env bash
# 50_api - wakeq-api over HTTP against a real redis-server: auth, intake,
# idempotency, reads, lists (filters), counts, cancel (pending and active),
# retry from dead, purge dead, server-sent events, the dashboard's files
# (headers, DASHBOARD_PATH), metrics, --help and start-up refusals.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis

QDRIVE=$BIN/tests/tools/qdrive
api_token s3cret-1

start_api() { _start_api API_TOKEN="$TOKEN,other-token" "$@"; }
post() { curl -s -H "$H" -H "$CT" -d "$1" "$API/v1/jobs"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# ---- start-up -------------------------------------------------------------
out=$("$API_BIN" --help)
check "--help lists settings" grep -q 'API_TOKEN' <<<"$out"
check "--help lists WAKE_FANOUT_MAX" grep -q 'WAKE_FANOUT_MAX' <<<"$out"
err=$(env -u API_TOKEN PORT=0 REDIS_URL=$REDIS_URL timeout 5 "$API_BIN" 2>&1); rc=$?
expect_eq "refuses to start without API_TOKEN (exit 2)" 2 "$rc"
check "says why it refused" grep -q 'API_TOKEN is not set' <<<"$err"
err=$(PORT=abc timeout 5 "$API_BIN" --no-auth 2>&1); rc=$?
expect_eq "bad PORT stops start-up" 2 "$rc"
check "bad PORT names the variable" grep -q "bad PORT 'abc'" <<<"$err"

for v in "API_TOKEN= " "API_TOKEN=a,,b" "API_TOKEN=tok en" "WAKE_TOKEN= "; do
	err=$(env PORT=0 REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN "$v" timeout 5 "$API_BIN" 2>&1); rc=$?
	expect_eq "'$v' stops start-up (exit 2)" 2 "$rc"
	check "in one line naming ${v%%=*} ($err)" contains "$err" "wakeq-api: bad ${v%%=*}: "
done

start_api

# ---- auth -----------------------------------------------------------------
expect_eq "no token -> 401" 401 "$(status_of -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"
expect_eq "rotated second token accepted" 202 \
	"$(status_of -H 'Authorization: Bearer other-token' -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"
expect_eq "healthz open" 200 "$(status_of "$API/healthz")"
expect_eq "readyz ok with redis" 200 "$(status_of "$API/readyz")"

# ---- intake and reads -----------------------------------------------------
r=$(post '{"type":"noop","payload":{"a":1},"priority":2,"max_attempts":5}')
ID=$(jq -r .id <<<"$r")
check "POST answers a UUIDv7 id" grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$ID"
expect_eq "POST status queued" queued "$(jq -r .status <<<"$r")"
expect_eq "POST status_url" "/v1/jobs/$ID" "$(jq -r .status_url <<<"$r")"
expect_eq "job hash exists in redis" 1 "$(rcli exists "wakeq:{default}:job:$ID")"
j=$(curl -s -H "$H" "$API/v1/jobs/$ID")
expect_eq "GET shows the job" "noop 2 5 1 default" "$(jq -r '"\(.type) \(.priority) \(.max_attempts) \(.payload.a) \(.queue)"' <<<"$j")"
check "GET has RFC 3339 created_at" grep -Eq '"created_at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z"' <<<"$j"
U=$(tr a-f A-F <<<"$ID")
expect_eq "GET accepts an uppercase id" 200 "$(status_of -H "$H" "$API/v1/jobs/$U")"

# idempotency: body key and header key
r1=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"noop","idempotency_key":"order-42"}' "$API/v1/jobs")
r2=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"noop","idempotency_key":"order-42"}' "$API/v1/jobs")
expect_eq "first keyed POST 202" 202 "${r1##* }"
expect_eq "repeat keyed POST 200" 200 "${r2##* }"
expect_eq "repeat answers the same id" "$(jq -r .id <<<"${r1% *}")" "$(jq -r .id <<<"${r2% *}")"
r3=$(curl -s -H "$H" -H "$CT" -H 'Idempotency-Key: hdr-1' -d '{"type":"noop"}' "$API/v1/jobs")
r4=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -H 'Idempotency-Key: hdr-1' -d '{"type":"noop"}' "$API/v1/jobs")
expect_eq "Idempotency-Key header works" "$(jq -r .id <<<"$r3") 200" "$(jq -r .id <<<"${r4% *}") ${r4##* }"

# scheduled
r=$(post '{"type":"noop","delay_s":3600}')
expect_eq "delay_s -> scheduled" scheduled "$(jq -r .status <<<"$r")"
r=$(post '{"type":"noop","run_at":"2099-01-02T03:04:05Z"}')
SID=$(jq -r .id <<<"$r")
expect_eq "run_at kept" "2099-01-02T03:04:05.000000Z" "$(curl -s -H "$H" "$API/v1/jobs/$SID" | jq -r .run_at)"

# counts and lists
q=$(curl -s -H "$H" "$API/v1/queues")
expect_eq "queue counts (queued, scheduled)" "4 2" "$(jq -r '"\(.queues.default.queued) \(.queues.default.scheduled)"' <<<"$q")"
# ---- labels: shown in every document, filterable in the list ----------------
LR=$(post '{"type":"noop","delay_s":3600,"labels":{"team":"red","tier":"gold"}}' | jq -r .id)
LB=$(post '{"type":"noop","delay_s":3600,"labels":{"team":"blue"}}' | jq -r .id)
expect_eq "GET shows labels" "red gold" "$(curl -s -H "$H" "$API/v1/jobs/$LR" | jq -r '"\(.labels.team) \(.labels.tier)"')"
expect_eq "a job without labels shows {}" "{}" "$(curl -s -H "$H" "$API/v1/jobs/$SID" | jq -c .labels)"
l=$(curl -s -H "$H" "$API/v1/queues/default/jobs?state=scheduled&label=team:red")
expect_eq "list filtered by label: only the red job" "$LR" "$(jq -r '[.jobs[].id] | join(",")' <<<"$l")"
l=$(curl -s -H "$H" "$API/v1/queues/default/jobs?state=scheduled&label=team:blue&limit=1")
expect_eq "filter with limit" "$LB" "$(jq -r '.jobs[0].id' <<<"$l")"
expect_eq "bad label filter -> 400" 400 "$(status_of -H "$H" "$API/v1/queues/default/jobs?label=nocolon")"
expect_eq "bad labels -> 400" 400 "$(status_of -H "$H" -H "$CT" -d '{"type":"noop","labels":{"a":1}}' "$API/v1/jobs")"
curl -s -H "$H" -X DELETE "$API/v1/jobs/$LR" >/dev/null
curl -s -H "$H" -X DELETE "$API/v1/jobs/$LB" >/dev/null
l=$(curl -s -H "$H" "$API/v1/queues/default/jobs?state=scheduled&limit=1")
expect_eq "list honours state and limit" "1 scheduled" "$(jq -r '"\(.jobs|length) \(.jobs[0].status)"' <<<"$l")"

# ---- cancel -------------------------------------------------------------------
r=$(curl -s -w ' %{http_code}' -H "$H" -X DELETE "$API/v1/jobs/$SID")
expect_eq "cancel scheduled -> 200 cancelled" "cancelled 200" "$(jq -r .status <<<"${r% *}") ${r##* }"
expect_eq "cancelled job left the delayed set" "" "$(rcli zscore 'wakeq:{default}:delayed' "$SID")"
expect_eq "cancel again -> 409" 409 "$(status_of -H "$H" -X DELETE "$API/v1/jobs/$SID")"

# active job: a cancel request reaches the runner through lease renewal
rcli del 'wakeq:{default}:pending' >/dev/null
AID=$(post '{"type":"noop"}' | jq -r .id)
"$QDRIVE" "$REDIS_URL" default run 20 100 >"$T/qd-active.out" &
QD=$!
wait_until 5 bash -c "[ \"\$(curl -s -H '$H' $API/v1/jobs/$AID | jq -r .status)\" = active ]"
r=$(curl -s -w ' %{http_code}' -H "$H" -X DELETE "$API/v1/jobs/$AID")
expect_eq "cancel active -> 202 cancel_requested" "true 202" "$(jq -r .cancel_requested <<<"${r% *}") ${r##* }"
wait $QD
expect_eq "runner stopped the job" "$AID cancelled" "$(cat "$T/qd-active.out")"
expect_eq "job ends cancelled" cancelled "$(curl -s -H "$H" "$API/v1/jobs/$AID" | jq -r .status)"

# ---- server-sent events -----------------------------------------------------------
EID=$(post '{"type":"noop"}' | jq -r .id)
curl -sN -H "$H" "$API/v1/jobs/$EID/events" >"$T/sse.txt" &
SSE=$!
sleep 0.3
"$QDRIVE" "$REDIS_URL" default run 3 50 >/dev/null
wait_until 5 grep -q '^event: end' "$T/sse.txt"
wait $SSE
expect_eq "SSE starts with a retry hint and the current state" "retry: 2000 event: state" \
	"$(head -1 "$T/sse.txt") $(sed -n 3p "$T/sse.txt")"
expect_eq "SSE: the take's active, then 3 progress updates" "active - active step-1 active step-2 active step-3" \
	"$(sed -n 's/^data: //p' "$T/sse.txt" | sed '1d;$d' | jq -r '"\(.status) \(.stage // "-")"' | tr '\n' ' ' | sed 's/ $//')"
expect_eq "every event has an id" "$(grep -c '^event: ' "$T/sse.txt")" "$(grep -c '^id: [0-9]' "$T/sse.txt")"
expect_eq "SSE ends with the done job and its result" "done true" \
	"$(grep -A1 '^event: end' "$T/sse.txt" | sed -n 's/^data: //p' | jq -r '"\(.status) \(.result.ok)"')"
# a late client gets the final state at once, and the stream closes
late=$(timeout 5 curl -sN -H "$H" "$API/v1/jobs/$EID/events")
expect_eq "late SSE client gets end at once" "event: end" "$(grep '^event: ' <<<"$late")"
# reconnecting with the end's id: told to stop
END_ID=$(grep -B1 '^event: end' "$T/sse.txt" | sed -n 's/^id: //p')
expect_eq "Last-Event-ID of the end -> 204" 204 \
	"$(status_of -H "$H" -H "Last-Event-ID: $END_ID" "$API/v1/jobs/$EID/events")"

# ---- retry from dead ---------------------------------------------------------------
DID=$(post '{"type":"noop","max_attempts":1}' | jq -r .id)
rcli hset "wakeq:{default}:job:$DID" status failed >/dev/null
rcli zrem 'wakeq:{default}:pending' "$DID" >/dev/null
rcli zadd 'wakeq:{default}:dead' 1 "$DID" >/dev/null
r=$(curl -s -w ' %{http_code}' -H "$H" -X POST "$API/v1/jobs/$DID/retry")
expect_eq "retry dead -> 200 queued" "queued 200" "$(jq -r .status <<<"${r% *}") ${r##* }"
expect_eq "retried job is pending again" 1 "$(rcli zscore 'wakeq:{default}:pending' "$DID" | grep -c .)"
expect_eq "retry a queued job -> 409" 409 "$(status_of -H "$H" -X POST "$API/v1/jobs/$DID/retry")"

# ---- filters by type and id; purge the dead ------------------------------------------
FA=$(post '{"type":"sleep","payload":{"ms":1},"delay_s":3600}' | jq -r .id)
FB=$(post '{"type":"noop","delay_s":3600}' | jq -r .id)
l=$(curl -s -H "$H" "$API/v1/queues/default/jobs?state=scheduled&type=sleep")
expect_eq "list filtered by type: only the sleep job" "$FA" "$(jq -r '[.jobs[].id] | join(",")' <<<"$l")"
part=$(tr a-f A-F <<<"${FB: -7}")
l=$(curl -s -H "$H" "$API/v1/queues/default/jobs?state=scheduled&id=$part")
expect_eq "list filtered by part of the id (any case): that job" "$FB" "$(jq -r '[.jobs[].id] | join(",")' <<<"$l")"
expect_eq "bad type filter -> 400" 400 "$(status_of -H "$H" "$API/v1/queues/default/jobs?type=a%20b")"
expect_eq "bad id filter -> 400" 400 "$(status_of -H "$H" "$API/v1/queues/default/jobs?id=xyz")"
for id in "$FA" "$FB"; do
	rcli zrem 'wakeq:{default}:delayed' "$id" >/dev/null
	rcli hset "wakeq:{default}:job:$id" status failed >/dev/null
	rcli zadd 'wakeq:{default}:dead' 1 "$id" >/dev/null
done
r=$(curl -s -w ' %{http_code}' -H "$H" -X POST "$API/v1/queues/default/purge-dead")
expect_eq "purge-dead -> 200 with the count" "2 200" "$(jq -r .purged <<<"${r% *}") ${r##* }"
expect_eq "the dead set is empty" 0 "$(rcli zcard 'wakeq:{default}:dead')"
expect_eq "the dead jobs are gone" 0 "$(rcli exists "wakeq:{default}:job:$FA" "wakeq:{default}:job:$FB")"
expect_eq "purge-dead of a queue not served -> 404" 404 \
	"$(status_of -H "$H" -X POST "$API/v1/queues/elsewhere/purge-dead")"
expect_eq "purge-dead needs the token" 401 "$(status_of -X POST "$API/v1/queues/default/purge-dead")"
expect_eq "wake without WAKE_URL -> 409" 409 "$(status_of -H "$H" -X POST "$API/v1/wake")"

# ---- the dashboard's files: open, with a strict CSP, at DASHBOARD_PATH ---------------
h=$(curl -s -D - -o "$T/dash.html" "$API/dashboard")
expect_eq "GET /dashboard -> 200 html" "200 text/html; charset=utf-8" \
	"$(head -1 <<<"$h" | cut -d' ' -f2) $(tr -d '\r' <<<"$h" | sed -n 's/^Content-Type: //Ip')"
csp=$(tr -d '\r' <<<"$h" | sed -n 's/^Content-Security-Policy: //Ip')
csp_strict() { contains "$1" "script-src 'self'" && contains "$1" "frame-ancestors 'none'" && ! contains "$1" unsafe; }
check "the page has a CSP with no inline script: $csp" csp_strict "$csp"
expect_eq "the page may not be framed" DENY "$(tr -d '\r' <<<"$h" | sed -n 's/^X-Frame-Options: //Ip')"
check "the page loads its script by path, not inline" grep -q '<script src="/dashboard/app.js"' "$T/dash.html"
check "no inline script in the page" sh -c "! grep -q '<script>' '$T/dash.html'"
expect_eq "GET /dashboard/app.js -> javascript" "text/javascript; charset=utf-8" \
	"$(curl -s -o /dev/null -w '%{content_type}' "$API/dashboard/app.js")"
expect_eq "GET /dashboard/style.css -> css" "text/css; charset=utf-8" \
	"$(curl -s -o /dev/null -w '%{content_type}' "$API/dashboard/style.css")"
DPORT=$($FREEPORT)
env PORT=$DPORT REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN RECONCILE_INTERVAL=0 DASHBOARD_PATH=/ops/queues \
	"$API_BIN" >>"$T/api-dash.log" 2>&1 &
DPID=$!
on_exit "kill_wait $DPID"
wait_until "$START_S" curl -sf -o /dev/null "http://127.0.0.1:$DPORT/healthz"
D=http://127.0.0.1:$DPORT
expect_eq "DASHBOARD_PATH moves the page" 200 "$(status_of "$D/ops/queues")"
check "and the page names its files there" grep -q 'src="/ops/queues/app.js"' <(curl -s "$D/ops/queues")
expect_eq "and its files" "200 200" "$(status_of "$D/ops/queues/app.js") $(status_of "$D/ops/queues/style.css")"
expect_eq "/dashboard is then no route" 404 "$(status_of "$D/dashboard")"
expect_eq "nor is a file under the page that does not exist" 404 "$(status_of "$D/ops/queues/nothing.js")"
kill_wait "$DPID"
env PORT=$DPORT REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN RECONCILE_INTERVAL=0 DASHBOARD_PATH= \
	"$API_BIN" >>"$T/api-dash.log" 2>&1 &
DPID=$!
on_exit "kill_wait $DPID"
wait_until "$START_S" curl -sf -o /dev/null "$D/healthz"
expect_eq "DASHBOARD_PATH empty: no dashboard" 404 "$(status_of "$D/dashboard")"
kill_wait "$DPID"
for bad in dashboard /v1/dash /healthz / /a//b /a/ /a/../b '/a b'; do
	err=$(env PORT=0 REDIS_URL=$REDIS_URL API_TOKEN=$TOKEN DASHBOARD_PATH="$bad" timeout 5 "$API_BIN" 2>&1)
	rc=$?
	expect_eq "DASHBOARD_PATH='$bad' stops start-up (exit 2, named)" "2 1" \
		"$rc $(grep -c "bad DASHBOARD_PATH" <<<"$err")"
done

# ---- HEAD: every GET route answers it, with GET's status and headers and no body
raw() { # raw REQUEST: sends it (printf %b) on a new connection, prints the answer
	exec 3<>"/dev/tcp/127.0.0.1/$API_PORT" || return 1
	printf '%b' "$1" >&3
	timeout 5 cat <&3
	exec 3<&-
}
hdr() { tr -d '\r' <"$1" | sed -n "s/^$2: //Ip" | head -1; }
UNKNOWN=01900000-0000-7000-8000-000000000000
for p in /healthz /readyz /metrics /dashboard /v1/queues "/v1/queues/default/jobs?state=scheduled" \
	"/v1/jobs/$ID" "/v1/jobs/$UNKNOWN" "/v1/jobs/$EID/events"; do
	raw "HEAD $p HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer $TOKEN\r\nConnection: close\r\n\r\n" >"$T/head"
	curl -s -D "$T/gethdr" -o "$T/getbody" -H "$H" "$API$p"
	hs=$(head -1 "$T/head" | cut -d' ' -f2)
	gs=$(head -1 "$T/gethdr" | cut -d' ' -f2)
	want="$gs $(hdr "$T/gethdr" Content-Type) 0"
	got="$hs $(hdr "$T/head" Content-Type) $(sed '1,/^\r$/d' "$T/head" | wc -c)"
	expect_eq "HEAD $p: GET's status and type, no body" "$want" "$got"
	case $p in
	/metrics | */events) ;; # counters move between the two; a stream has no length
	*) expect_eq "HEAD $p: GET's Content-Length" "$(wc -c <"$T/getbody")" "$(hdr "$T/head" Content-Length)" ;;
	esac
done
QID=$(post '{"type":"noop","delay_s":3600}' | jq -r .id)
raw "HEAD /v1/jobs/$QID/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer $TOKEN\r\n\r\n" >"$T/head"
expect_eq "HEAD on the events of a live job: headers at once, no stream left open" \
	"200 text/event-stream 0 0" "$(head -1 "$T/head" | cut -d' ' -f2) $(hdr "$T/head" Content-Type) \
$(sed '1,/^\r$/d' "$T/head" | wc -c) $(curl -s "$API/metrics" | sed -n 's/^wakeq_api_event_streams //p')"
expect_eq "HEAD /v1/queues needs the token" 401 "$(curl -s -I -o /dev/null -w '%{http_code}' "$API/v1/queues")"
h=$(curl -s -D - -o /dev/null -X PUT "$API/metrics")
expect_eq "405 on a GET route lists HEAD in Allow" "GET, HEAD" "$(tr -d '\r' <<<"$h" | sed -n 's/^Allow: //Ip')"
h=$(curl -s -I -H "$H" "$API/v1/jobs")
expect_eq "HEAD on a POST-only route -> 405 Allow: POST" "405 POST" \
	"$(head -1 <<<"$h" | cut -d' ' -f2) $(tr -d '\r' <<<"$h" | sed -n 's/^Allow: //Ip')"

# ---- metrics, 503 --------------------------------------------------------------
m=$(curl -s "$API/metrics")
check "metrics count enqueued jobs" grep -Eq '^wakeq_api_enqueued_total [1-9]' <<<"$m"
check "metrics count 401s" grep -Eq '^wakeq_api_unauthorized_total [1-9]' <<<"$m"
stop_redis
r=$(curl -s -D "$T/h503" -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")
expect_eq "redis down -> 503 unavailable" unavailable "$(jq -r .error.code <<<"$r")"
check "503 carries Retry-After" grep -qi '^Retry-After: ' "$T/h503"
expect_eq "readyz 503 when redis is down" 503 "$(status_of "$API/readyz")"
restart_redis
wait_until 5 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -H '$H' -H '$CT' -d '{\"type\":\"noop\"}' $API/v1/jobs) = 202 ]"
expect_eq "accepts again once redis is back" 202 "$(status_of -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"

# ---- clean stop ------------------------------------------------------------------
curl -sN -H "$H" "$API/v1/jobs/$(post '{"type":"noop"}' | jq -r .id)/events" >/dev/null &
sleep 0.2
kill -TERM "$API_PID"
rc=0
for _ in $(seq 1 100); do kill -0 "$API_PID" 2>/dev/null || break; sleep 0.05; done
wait "$API_PID" 2>/dev/null || rc=$?
expect_eq "SIGTERM with an open stream exits 0" 0 "$rc"
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
