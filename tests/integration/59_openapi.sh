#!/usr/bin/env bash
# 59_openapi.sh - docs/openapi.yaml against the real wakeq-api.
#
# The document is linted with @redocly/cli (and a broken copy must fail
# the lint). Then a real wakeq-api (Redis and Postgres, and a second one
# with Redis only) is driven through every operation, success and error
# answers alike; each exchange is captured with curl and checked by
# tests/tools/openapi_check.js with ajv: the status and content type are
# listed, the body validates against the schema, required headers are
# there, what the server accepted the request schema accepts, 404/405
# answers match the document's paths and methods, every operation was
# exercised, and the routes of docs/API.md (and internal/api/routes.c once
# there) are the document's operations. The npm packages are installed by
# this test into $BUILD/npm (once).
set -u
. "$(dirname "$0")/../lib/test.sh"

REDOCLY_VERSION=2.77.0
AJV_VERSION=8.20.0
AJV_FORMATS_VERSION=3.0.1
YAML_VERSION=2.9.1
NPM_DIR=$BIN/npm
DOC=$TOP/docs/openapi.yaml

installed() { # installed PACKAGE VERSION
	[ "$(node -p "require('$NPM_DIR/node_modules/$1/package.json').version" \
		2>/dev/null)" = "$2" ]
}
if ! installed @redocly/cli "$REDOCLY_VERSION" || ! installed ajv "$AJV_VERSION" ||
	! installed ajv-formats "$AJV_FORMATS_VERSION" || ! installed yaml "$YAML_VERSION"; then
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		not_ok "node and npm are needed to install the OpenAPI linter and validator (container/deps.sh install test)"
		exit 1
	fi
	mkdir -p "$NPM_DIR"
	if ! timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
		"@redocly/cli@$REDOCLY_VERSION" "ajv@$AJV_VERSION" \
		"ajv-formats@$AJV_FORMATS_VERSION" "yaml@$YAML_VERSION" >"$T/npm.log" 2>&1; then
		not_ok "cannot install @redocly/cli@$REDOCLY_VERSION, ajv@$AJV_VERSION, ajv-formats@$AJV_FORMATS_VERSION and yaml@$YAML_VERSION from the npm registry: the OpenAPI document cannot be linted nor checked"
		diag "$T/npm.log"
		exit 1
	fi
fi
check "@redocly/cli $REDOCLY_VERSION is installed" installed @redocly/cli "$REDOCLY_VERSION"
check "ajv $AJV_VERSION and ajv-formats $AJV_FORMATS_VERSION are installed" \
	sh -c "[ \"\$(node -p \"require('$NPM_DIR/node_modules/ajv/package.json').version\")\" = $AJV_VERSION ]"

# ---- lint ---------------------------------------------------------------------
lint() { # lint FILE: redocly lint with docs/redocly.yaml, offline
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
		timeout 120 "$NPM_DIR/node_modules/.bin/redocly" lint --config "$TOP/docs/redocly.yaml" "$1"
}
lint "$DOC" >"$T/lint.log" 2>&1
rc=$?
expect_eq "redocly lint docs/openapi.yaml passes" 0 "$rc"
check "with no warning" sh -c "! grep -q 'You have [0-9]* warning' '$T/lint.log'"
[ "$rc" = 0 ] || diag "$T/lint.log"
sed 's|#/components/schemas/JobUpdate|#/components/schemas/NoSuchSchema|' "$DOC" >"$T/broken.yaml"
lint "$T/broken.yaml" >"$T/lint-broken.log" 2>&1
check "a document with a dangling \$ref fails the lint" test $? -ne 0

# ---- a real API, and exchanges with it -------------------------------------------
start_redis
start_postgres
mkdir -p "$T/data"
TOKEN=oa-token
start_api() { # start_api NAME ENV=VAL...: sets NAME_URL
	local name=$1 port pid
	shift
	port=$($FREEPORT)
	env PORT="$port" REDIS_URL="$REDIS_URL" API_TOKEN=$TOKEN RECONCILE_INTERVAL=0 \
		QUEUES=default,oa DATA_DIR="$T/data" MAX_BODY=4K "$@" \
		"$BIN/wakeq-api" >"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid"
	eval "${name}_URL=http://127.0.0.1:$port ${name}_PID=$pid"
	wait_until "$START_S" curl -fs "http://127.0.0.1:$port/healthz" >/dev/null ||
		{ not_ok "wakeq-api $name started"; diag "$T/$name.log"; exit 1; }
}
# a stand-in for the worker's /wake, for POST /v1/wake
start_fake STUB "$BIN/tests/tools/wakestub"
start_api pg DATABASE_URL="$DATABASE_URL"
start_api nopg DATABASE_URL= WAKE_URL="$STUB/wake"
API=$pg_URL
X=$T/exchanges.jsonl
: >"$X"

# req METHOD PATH [CURL ARGS...]: one exchange with $API (token sent unless
# NOAUTH=1), appended to $X; the status in $S, the body in $T/body
req() {
	local method=$1 path=$2 auth=()
	shift 2
	[ "${NOAUTH:-0}" = 1 ] || auth=(-H "Authorization: Bearer $TOKEN")
	if [ "$method" = HEAD ]; then
		S=$(curl -s -I -o /dev/null -D "$T/head" -w '%{http_code}' --max-time 20 "${auth[@]}" "$@" "$API$path")
		: >"$T/body"
	else
		S=$(curl -s -X "$method" -o "$T/body" -D "$T/head" -w '%{http_code}' --max-time 20 \
			"${auth[@]}" "$@" "$API$path")
	fi
	# the last header block (after a 100 Continue)
	awk 'BEGIN{RS="\r\n\r\n"} NF{b=$0} END{print b}' "$T/head" >"$T/head1"
	jq -cn --arg m "$method" --arg p "$path" --argjson s "$S" --rawfile h "$T/head1" \
		--rawfile b "$T/body" --argjson r "${REQ:-null}" \
		'{method:$m, path:$p, status:$s, headers:$h, body:$b, request:$r}' >>"$X"
}
# jreq METHOD PATH JSON: a JSON request, its body recorded too
jreq() {
	local method=$1 path=$2 body=$3
	if jq -e . >/dev/null 2>&1 <<<"$body"; then REQ=$body; else REQ=null; fi
	req "$method" "$path" -H 'Content-Type: application/json' --data-binary "$body"
	REQ=
}
id_of() { jq -r .id "$T/body"; }

# health
req GET /healthz
req HEAD /healthz
req GET /readyz
req GET /metrics
req GET /openapi.yaml
req GET /dashboard
req HEAD /dashboard
req GET /dashboard/app.js
req GET /dashboard/style.css
API=$nopg_URL req GET /readyz

# POST /v1/jobs: accepted, a repeat, scheduled, labels and every field
jreq POST /v1/jobs '{"type":"noop"}'
q1=$(id_of)
jreq POST /v1/jobs '{"type":"sleep","payload":{"ms":1},"queue":"oa","priority":2,"max_attempts":5,"timeout_s":30,"idempotency_key":"oa-1","callback_url":"https://example.com/hook","labels":{"tenant":"acme"}}'
oa1=$(id_of)
jreq POST /v1/jobs '{"type":"sleep","payload":{"ms":1},"queue":"oa","idempotency_key":"oa-1"}'
expect_eq "an idempotent repeat answers 200" 200 "$S"
jreq POST /v1/jobs '{"type":"noop","unique_key":"oa-u"}'
jreq POST /v1/jobs '{"type":"noop","unique_key":"oa-u"}'
expect_eq "a unique key held by a live job answers 200" 200 "$S"
jreq POST /v1/jobs '{"type":"noop","delay_s":600,"payload":null,"labels":null}'
sched=$(id_of)
jreq POST /v1/jobs '{"type":"noop","run_at":"2030-01-02T03:04:05Z"}'
REQ=null req POST /v1/jobs -H 'Content-Type: application/json' -H 'Idempotency-Key: oa-h' -d '{"type":"noop"}'
# refused
jreq POST /v1/jobs ''
jreq POST /v1/jobs 'not json'
jreq POST /v1/jobs '[1]'
# (duplicate keys: JSON the schema cannot see, so the request is not checked)
req POST /v1/jobs -H 'Content-Type: application/json' -d '{"type":"noop","type":"noop"}'
jreq POST /v1/jobs '{"type":"noop","colour":"red"}'
jreq POST /v1/jobs '{"type":"noop","priority":10}'
jreq POST /v1/jobs '{"type":"noop","delay_s":1,"run_at":"2030-01-02T03:04:05Z"}'
jreq POST /v1/jobs '{"type":"noop","queue":"elsewhere"}'
jreq POST /v1/jobs '{"type":"transmogrify"}'
jreq POST /v1/jobs '{"type":"webhook.deliver"}'
jreq POST /v1/jobs '{"type":"sleep","payload":{"ms":"x"}}'
req POST /v1/jobs -H 'Content-Type: text/plain' -d '{"type":"noop"}'
head -c 5000 /dev/zero | tr '\0' ' ' >"$T/big"
req POST /v1/jobs -H 'Content-Type: application/json' --data-binary @"$T/big"
NOAUTH=1 req POST /v1/jobs -H 'Content-Type: application/json' -d '{"type":"noop"}'
NOAUTH=1 req GET /v1/queues -H 'Authorization: Bearer wrong'

# reads
req GET "/v1/jobs/$q1"
req HEAD "/v1/jobs/$q1"
req GET "/v1/jobs/$(echo "$q1" | tr a-f A-F)"
req GET /v1/jobs/not-a-uuid
req GET /v1/jobs/01a20466-181e-7014-b516-77142d772f9d
req GET /v1/queues
req GET /v1/queues/default
req GET /v1/queues/oa
req GET /v1/queues/elsewhere
req GET '/v1/queues/default/jobs'
req GET '/v1/queues/oa/jobs?state=queued&limit=10&offset=0&label=tenant:acme'
req GET '/v1/queues/default/jobs?state=scheduled'
req GET '/v1/queues/default/jobs?state=sleeping'
req GET '/v1/queues/default/jobs?limit=0'
req GET '/v1/queues/default/jobs?label=nocolon'
req GET '/v1/queues/elsewhere/jobs'
req GET "/v1/queues/oa/jobs?state=queued&type=sleep&id=$(echo "${oa1: -6}" | tr a-f A-F)"
expect_eq "the list filtered by type and part of the id finds the job" "$oa1" "$(jq -r '[.jobs[].id] | join(",")' "$T/body")"
req GET '/v1/queues/default/jobs?type=no%20such'
req GET '/v1/queues/default/jobs?id=xyz'

# dependencies, flows and batches
jreq POST /v1/jobs "{\"type\":\"noop\",\"depends_on\":[\"$q1\"],\"on_dependency_failure\":\"cancel\"}"
dep=$(id_of)
req GET "/v1/jobs/$dep"
jreq POST /v1/jobs '{"type":"noop","depends_on":["01a20466-181e-7014-b516-77142d772f9d"]}'
expect_eq "an unknown dependency answers 400" 400 "$S"
jreq POST /v1/jobs '{"type":"noop","depends_on":[]}'
jreq POST /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop"},{"type":"sleep","payload":{"ms":1}}],"on_dependency_failure":"ignore"}'
expect_eq "a flow answers 202" 202 "$S"
flow=$(id_of)
req GET "/v1/jobs/$flow"
jreq POST /v1/flows '{"parent":{"type":"noop"},"children":[{"type":"noop","children":[{"type":"noop"}]}]}'
expect_eq "a tree answers 202" 202 "$S"
jreq POST /v1/flows '{"parent":{"type":"noop"},"children":[]}'
jreq POST /v1/flows '{"parent":{"type":"noop","unique_key":"x"},"children":[{"type":"noop"}]}'
req POST /v1/flows -H 'Content-Type: text/plain' -d '{}'
jreq POST /v1/batches '{"queue":"default","jobs":[{"type":"noop"}],"callback":{"type":"noop","labels":{"k":"v"}}}'
jreq POST /v1/batches '{"jobs":[{"type":"noop"},{"type":"noop"}],"callback_url":"https://example.com/hook"}'
expect_eq "a batch answers 202" 202 "$S"
batch=$(id_of)
req GET "/v1/batches/$batch"
expect_eq "its counts" 200 "$S"
req GET "/v1/batches/$q1"
expect_eq "a job that is no batch is 404" 404 "$S"
req GET /v1/batches/not-a-uuid
jreq POST /v1/batches '{"jobs":"x"}'
req POST /v1/batches -H 'Content-Type: text/plain' -d '{}'

# queue controls
req POST /v1/queues/oa/pause
req GET /v1/queues
req POST /v1/queues/oa/resume
req POST /v1/queues/elsewhere/pause
req GET /v1/queues/oa/settings
jreq PUT /v1/queues/oa/settings '{"done_max":500,"result_ttl_s":3600,"dead_ttl_s":null}'
jreq PUT /v1/queues/oa/settings '{"rate_max":1000,"rate_period_s":0.5,"group_concurrency":100}'
jreq PUT /v1/queues/oa/settings '{"rate_max":10}'
jreq PUT /v1/queues/oa/settings '{}'
jreq POST /v1/jobs '{"type":"noop","group":"tenant-1"}'
jreq PUT /v1/queues/oa/settings '{"done_max":0.5}'
jreq PUT /v1/queues/oa/settings '{"colour":"red"}'
jreq PUT /v1/queues/oa/settings 'nope'
req PUT /v1/queues/oa/settings -H 'Content-Type: text/plain' -d '{}'
req GET /v1/queues/elsewhere/settings
req DELETE /v1/queues/oa/settings

# a job driven through the real queue scripts, followed over SSE
jreq POST /v1/jobs '{"type":"noop","queue":"oa"}'
ev=$(id_of)
( curl -s -N --max-time 20 -D "$T/ev.head" -H "Authorization: Bearer $TOKEN" \
	"$API/v1/jobs/$ev/events" >"$T/ev.body"; echo done >"$T/ev.rc" ) &
wait_until 5 sh -c "grep -q '^event: state' '$T/ev.body'"
"$BIN/tests/tools/qdrive" "$REDIS_URL" oa run 2 100 >/dev/null
# (the sleep job before it is left queued: qdrive takes in priority order)
wait_until 10 test -s "$T/ev.rc"
grep -q '^event: update' "$T/ev.body" && grep -q '^event: end' "$T/ev.body" &&
	ok "the event stream had state, update and end" || not_ok "the event stream had state, update and end"
jq -cn --arg p "/v1/jobs/$ev/events" --rawfile h "$T/ev.head" --rawfile b "$T/ev.body" \
	'{method:"GET", path:$p, status:200, headers:$h, body:$b, request:null}' >>"$X"
req GET "/v1/jobs/$ev"
req GET "/v1/jobs/$ev/events"
end_id=$(sed -n 's/^id: //p' "$T/body" | tail -1)
req GET "/v1/jobs/$ev/events" -H "Last-Event-ID: $end_id"
expect_eq "the events of an ended job, reconnecting past its end: 204" 204 "$S"
NOAUTH=1 req GET "/v1/jobs/$ev/events?access_token=$TOKEN"
NOAUTH=1 req GET "/v1/jobs/$ev/events" -H "Cookie: wakeq_token=$TOKEN"
NOAUTH=1 req GET "/v1/jobs/$ev/events?access_token=wrong"
req GET /v1/jobs/not-a-uuid/events
req GET /v1/jobs/01a20466-181e-7014-b516-77142d772f9d/events

# cancel: queued, running, finished
req DELETE "/v1/jobs/$sched"
jreq POST /v1/jobs '{"type":"noop","queue":"oa","priority":0}'
run=$(id_of)
"$BIN/tests/tools/qdrive" "$REDIS_URL" oa run 20 100 >/dev/null &
qd=$!
on_exit "kill_wait $qd"
wait_until 5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $run | jq -r .status)\" = active ]"
req DELETE "/v1/jobs/$run"
expect_eq "cancel of a running job answers 202" 202 "$S"
wait "$qd"
req DELETE "/v1/jobs/$ev"
req DELETE /v1/jobs/01a20466-181e-7014-b516-77142d772f9d

# retry: a dead job, and one that is not
jreq POST /v1/jobs '{"type":"fail","queue":"oa","payload":{"message":"for retry"}}'
dead=$(id_of)
IDLE_TIMEOUT=0.3 QUEUES=oa wq drain >/dev/null 2>&1
req POST "/v1/jobs/$dead/retry"
req POST "/v1/jobs/$dead/retry"
req POST /v1/jobs/01a20466-181e-7014-b516-77142d772f9d/retry
req GET '/v1/queues/oa/jobs?state=done&limit=5'
req POST /v1/queues/oa/purge-dead
req POST /v1/queues/elsewhere/purge-dead

# a wake now: without WAKE_URL, and with one
req POST /v1/wake
API=$nopg_URL req POST /v1/wake
expect_eq "POST /v1/wake reached the worker's /wake" 1 \
	"$(wait_until 5 sh -c "curl -s $STUB/count | jq -e '.wakes >= 1' >/dev/null" && echo 1)"

# cron schedules
jreq POST /v1/schedules '{"name":"oa-s","queue":"oa","cron":"0 3 * * *","timezone":"Europe/Paris","job":{"type":"noop","payload":{"a":1},"labels":{"k":"v"}},"overlap":"allow","catch_up":"all","catch_up_max":5}'
jreq POST /v1/schedules '{"name":"oa-s","queue":"oa","cron":"@daily","job":{"type":"noop"}}'
jreq POST /v1/schedules '{"name":"oa-s","cron":"61 * * * *","job":{"type":"noop"}}'
jreq POST /v1/schedules '{"name":"oa-s","cron":"* * * * *","job":{"type":"noop","delay_s":5}}'
jreq POST /v1/schedules '{"name":"oa-s","cron":"* * * * *","job":{"type":"noop"},"colour":1}'
jreq POST /v1/schedules '{"name":"oa-s","cron":"* * * * *","job":{"type":"nope"}}'
jreq POST /v1/schedules 'nope'
req POST /v1/schedules -H 'Content-Type: text/plain' -d '{}'
req GET /v1/schedules
req GET /v1/schedules/oa-s
req POST /v1/schedules/oa-s/pause
req POST /v1/schedules/oa-s/resume
req DELETE /v1/schedules/oa-s
req GET /v1/schedules/oa-s
req DELETE /v1/schedules/oa-s
req POST /v1/schedules/oa-s/pause
req POST /v1/schedules/oa-s/resume

# uploads
printf 'hello upload' >"$T/up.txt"
req POST '/v1/uploads?name=hello.txt' -H 'Content-Type: application/octet-stream' --data-binary @"$T/up.txt"
req POST /v1/uploads -H 'Content-Type: text/plain' --data-binary @"$T/up.txt"
req POST /v1/uploads -H 'Content-Type: application/octet-stream' --data-binary ''
req POST /v1/uploads -F "f=@$T/up.txt"

# reconcile, with and without Postgres
req POST /v1/reconcile
API=$nopg_URL req POST /v1/reconcile

# routes and methods the document does not list
req GET /nowhere
NOAUTH=1 req GET /v1/nowhere
req PUT /v1/jobs -H 'Content-Type: application/json' -d '{}'
req POST "/v1/jobs/$q1"
req GET /v1/jobs/01a20466-181e-7014-b516-77142d772f9d/retry

# Redis down: 503 with Retry-After
stop_redis
req GET /readyz
req GET /v1/queues
req GET /v1/queues/default
req GET "/v1/jobs/$q1"
jreq POST /v1/jobs '{"type":"noop"}'
expect_eq "POST with Redis down answers 503" 503 "$S"

# ---- the check ------------------------------------------------------------------------
expect_eq "exchanges captured" "$(grep -c . "$X")" "$(jq -c . "$X" | grep -c .)"
routes=("$TOP/docs/API.md")
[ -f "$TOP/internal/api/routes.c" ] && routes+=("$TOP/internal/api/routes.c")
NODE_PATH=$NPM_DIR/node_modules timeout 120 node "$TOP/tests/tools/openapi_check.js" \
	"$DOC" "$X" "${routes[@]}" >"$T/check.log" 2>&1
rc=$?
cat "$T/check.log"
check "every exchange is as docs/openapi.yaml says" test "$rc" = 0 -a -s "$T/check.log"

# the checker finds drift: a schema that says less than the server sends
sed 's/^    Cancelled:$/    Cancelled:\n      maxProperties: 1/' "$DOC" >"$T/drift.yaml"
NODE_PATH=$NPM_DIR/node_modules timeout 120 node "$TOP/tests/tools/openapi_check.js" \
	"$T/drift.yaml" "$X" >"$T/drift.log" 2>&1
check "a schema that disagrees with the server is caught" grep -q "^not ok - DELETE /v1/jobs/$sched 200" "$T/drift.log"
exit 0
