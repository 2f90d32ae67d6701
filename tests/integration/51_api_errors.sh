#!/usr/bin/env bash
# 51_api_errors - a table of bad requests, each with its exact status and
# error code, and each checked to change nothing in Redis (and Postgres):
# run once with Redis alone and once with DATABASE_URL. Then outages:
# Postgres down -> 503 and nothing half-written in Redis; Redis down ->
# 503 and no row left in Postgres.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis
start_postgres

api_token tok-51

start_api() { _start_api MAX_BODY=4K DATABASE_URL= "$@"; }

# Everything in Redis, canonically: keys, types and contents (one script
# run, not a redis-cli a key: the table below snapshots twice a row).
redis_snap() {
	rcli eval "
	local o, ks = {}, redis.call('KEYS', '*')
	table.sort(ks)
	for _, k in ipairs(ks) do
		local t, v = redis.call('TYPE', k).ok, {}
		if t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
		elseif t == 'hash' then
			local h = redis.call('HGETALL', k)
			for i = 1, #h, 2 do v[#v + 1] = h[i] .. '\t' .. h[i + 1] end
			table.sort(v)
		elseif t == 'string' then v = { redis.call('GET', k) }
		elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
		elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v) end
		o[#o + 1] = '== ' .. k .. ' ' .. t
		for _, x in ipairs(v) do o[#o + 1] = x end
	end
	return o" 0
}
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
pg_snap() { pg "select id, status, updated_at from jobs order by id" 2>/dev/null; }

BIG=$(head -c 5000 /dev/zero | tr '\0' a)
LONGKEY=$(head -c 201 /dev/zero | tr '\0' k)
UNKNOWN=01900000-0000-7000-8000-000000000000

# METHOD|PATH|AUTH(y/n/bad/basic)|CONTENT-TYPE|BODY|STATUS|CODE|NAME
table() {
	cat <<TABLE
POST|/v1/jobs|n|json|{"type":"noop"}|401|unauthorized|no token
POST|/v1/jobs|bad|json|{"type":"noop"}|401|unauthorized|wrong token
POST|/v1/jobs|basic|json|{"type":"noop"}|401|unauthorized|basic auth
POST|/v1/jobs|y|text/plain|{"type":"noop"}|415|unsupported_media_type|text/plain body
POST|/v1/jobs|y|none|{"type":"noop"}|415|unsupported_media_type|no content type
POST|/v1/jobs|y|json|{|400|invalid_json|truncated JSON
POST|/v1/jobs|y|json|[]|400|invalid_json|array body
POST|/v1/jobs|y|json||400|invalid_json|empty body
POST|/v1/jobs|y|json|{"type":"noop","type":"noop"}|400|invalid_json|duplicate key
POST|/v1/jobs|y|json|{"payload":{}}|400|invalid_field|type missing
POST|/v1/jobs|y|json|{"type":5}|400|invalid_field|type not a string
POST|/v1/jobs|y|json|{"type":"nope"}|400|unknown_type|unknown type
POST|/v1/jobs|y|json|{"type":"noop","bogus":1}|400|unknown_field|unknown field
POST|/v1/jobs|y|json|{"type":"noop","payload":[1]}|400|invalid_field|payload not an object
POST|/v1/jobs|y|json|{"type":"sleep","payload":{"ms":"x"}}|400|invalid_payload|sleep ms not a number
POST|/v1/jobs|y|json|{"type":"media.probe","payload":{}}|400|invalid_payload|probe without input
POST|/v1/jobs|y|json|{"type":"http.request","payload":{"url":5}}|400|invalid_payload|http url not a string
POST|/v1/jobs|y|json|{"type":"media.probe","payload":{"input":"file:///etc/passwd"}}|400|invalid_payload|file input outside DATA_DIR
POST|/v1/jobs|y|json|{"type":"media.probe","payload":{"input":"file://uploads/../../etc/passwd"}}|400|invalid_payload|file input escaping with ..
POST|/v1/jobs|y|json|{"type":"media.probe","payload":{"input":"file:///tmp/wakeq/%2e%2e/x.mp4"}}|400|invalid_payload|file input escaping with escaped ..
POST|/v1/jobs|y|json|{"type":"media.probe","payload":{"input":"file:///tmp/wakeqx/a.mp4"}}|400|invalid_payload|file input in a sibling of DATA_DIR
POST|/v1/jobs|y|json|{"type":"media.thumbnail","payload":{"input":"file://in.mp4","output":"file:///var/tmp/t.png"}}|400|invalid_payload|file output outside DATA_DIR
POST|/v1/jobs|y|json|{"type":"media.transcode","payload":{"input":"https://example.com/a.mp4","output":"file://out/../../x.mp4"}}|400|invalid_payload|transcode output escaping with ..
POST|/v1/jobs|y|json|{"type":"noop","priority":10}|400|invalid_field|priority too high
POST|/v1/jobs|y|json|{"type":"noop","priority":1.5}|400|invalid_field|priority fractional
POST|/v1/jobs|y|json|{"type":"noop","max_attempts":0}|400|invalid_field|max_attempts zero
POST|/v1/jobs|y|json|{"type":"noop","timeout_s":0}|400|invalid_field|timeout_s zero
POST|/v1/jobs|y|json|{"type":"noop","delay_s":-1}|400|invalid_field|negative delay
POST|/v1/jobs|y|json|{"type":"noop","delay_s":1,"run_at":"2030-01-01T00:00:00Z"}|400|invalid_field|delay and run_at
POST|/v1/jobs|y|json|{"type":"noop","run_at":"tomorrow"}|400|invalid_field|run_at not RFC 3339
POST|/v1/jobs|y|json|{"type":"noop","queue":"bad name!"}|400|invalid_field|bad queue name
POST|/v1/jobs|y|json|{"type":"noop","queue":"elsewhere"}|400|invalid_field|queue not served
POST|/v1/jobs|y|json|{"type":"noop","idempotency_key":""}|400|invalid_field|empty idempotency key
POST|/v1/jobs|y|json|{"type":"noop","idempotency_key":"$LONGKEY"}|400|invalid_field|idempotency key too long
POST|/v1/jobs|y|json|{"type":"noop","callback_url":"ftp://x.example/"}|400|invalid_field|callback not http
POST|/v1/jobs|y|json|{"type":"noop","payload":{"x":"$BIG"}}|413|too_large|body over MAX_BODY
PUT|/v1/jobs|y|json|{"type":"noop"}|405|method_not_allowed|PUT on /v1/jobs
GET|/v1/jobs|y|none||405|method_not_allowed|GET on /v1/jobs
GET|/v1/jobs/not-a-uuid|y|none||400|invalid_id|malformed id
GET|/v1/jobs/$UNKNOWN|y|none||404|not_found|unknown job
DELETE|/v1/jobs/$UNKNOWN|y|none||404|not_found|cancel unknown job
GET|/v1/jobs/$UNKNOWN/events|y|none||404|not_found|events of unknown job
POST|/v1/jobs/$UNKNOWN/retry|y|none||404|not_found|retry unknown job
DELETE|/v1/jobs/@DONE@|y|none||409|conflict|cancel a finished job
POST|/v1/jobs/@QUEUED@/retry|y|none||409|conflict|retry a job that is not dead
GET|/v1/nothing|y|none||404|not_found|unknown route
GET|/v1/queues/default/jobs?state=bogus|y|none||400|invalid_query|bad state
GET|/v1/queues/default/jobs?limit=0|y|none||400|invalid_query|bad limit
GET|/v1/queues/nope/jobs|y|none||404|not_found|queue not served
TABLE
}

run_table() { # run_table LABEL
	local label=$1 m p a ct b st code name args got gcode
	while IFS='|' read -r m p a ct b st code name; do
		p=${p//@DONE@/$DONE}
		p=${p//@QUEUED@/$QUEUED}
		args=(-s -o "$T/body" -w '%{http_code}' -X "$m")
		case $a in
		y) args+=(-H "$H") ;;
		bad) args+=(-H "Authorization: Bearer nope") ;;
		basic) args+=(-H "Authorization: Basic dXNlcjpwYXNz") ;;
		esac
		case $ct in
		json) args+=(-H "$CT") ;;
		none) args+=(-H "Content-Type:") ;;
		*) args+=(-H "Content-Type: $ct") ;;
		esac
		[ "$m" = POST ] || [ "$m" = PUT ] && args+=(--data-binary "$b")
		before_r=$(redis_snap)
		before_p=$(pg_snap)
		got=$(curl "${args[@]}" "$API$p")
		gcode=$(jq -r .error.code "$T/body" 2>/dev/null)
		if [ "$got $gcode" = "$st $code" ] && [ "$(redis_snap)" = "$before_r" ] &&
			[ "$(pg_snap)" = "$before_p" ]; then
			ok "$label: $name -> $st $code, nothing changed"
		else
			not_ok "$label: $name -> want $st $code, got $got $gcode $(head -c 200 "$T/body")"
		fi
	done < <(table)
}

setup_jobs() {
	DONE=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs" | jq -r .id)
	curl -s -o /dev/null -H "$H" -X DELETE "$API/v1/jobs/$DONE"
	QUEUED=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs" | jq -r .id)
}

# ---- Redis alone ---------------------------------------------------------
start_api
setup_jobs
snap=$(redis_snap)
check "the snapshot holds the queued job's record" contains "$snap" "$(printf 'status\tqueued')"
check "the snapshot holds the pending set" contains "$snap" ":pending zset"
run_table redis

# ---- protocol-level errors -------------------------------------------------
# JSON where wakeq sees the request first; libmicrohttpd's own HTML page
# (status checked only) where it answers before any hook of ours runs.
raw() { # raw REQUEST: sends it (printf %b) on a new connection, prints the answer
	exec 3<>"/dev/tcp/127.0.0.1/$API_PORT" || return 1
	printf '%b' "$1" >&3
	timeout 5 cat <&3
	exec 3<&-
}
LONGURI=$(head -c 9000 /dev/zero | tr '\0' u)
BIGHDR=$(head -c 20000 /dev/zero | tr '\0' h)
before=$(redis_snap)
got=$(curl -s -o "$T/body" -w '%{http_code}' -H "$H" "$API/v1/queues/default/jobs?x=$LONGURI")
expect_eq "request target over 8 KiB -> 414 uri_too_long as JSON" "414 uri_too_long" \
	"$got $(jq -r .error.code "$T/body" 2>/dev/null)"
got=$(curl -s -o "$T/body" -w '%{http_code}' -H "$H" -H "$CT" -H "X-Big: $BIGHDR" \
	-d '{"type":"noop"}' "$API/v1/jobs")
expect_eq "headers over 16 KiB -> 431 headers_too_large as JSON" "431 headers_too_large" \
	"$got $(jq -r .error.code "$T/body" 2>/dev/null)"
expect_eq "refused POST with large headers changed nothing" "$before" "$(redis_snap)"
# status line of each answer; the body is libmicrohttpd's (docs/API.md)
P="POST /v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer $TOKEN\r\nContent-Type: application/json\r\n"
for c in "HTTP/2.0 request|505|GET /healthz HTTP/2.0\r\n" \
	"negative Content-Length|400|${P}Content-Length: -1\r\n\r\n" \
	"bad chunked encoding|400|${P}Transfer-Encoding: chunked\r\n\r\nzz\r\n"; do
	IFS='|' read -r name st req <<<"$c"
	expect_eq "$name -> $st (libmicrohttpd's page)" "$st" "$(raw "$req" | head -1 | cut -d' ' -f2)"
done
expect_eq "malformed requests changed nothing" "$before" "$(redis_snap)"
# file:// inside DATA_DIR (the default /tmp/wakeq) passes the same check
for u in file://uploads/a.mp4 file:///tmp/wakeq/uploads/a.mp4 file:///tmp/wakeq//./in/b.mp4; do
	expect_eq "file input $u inside DATA_DIR -> 202" 202 "$(curl -s -o /dev/null -w '%{http_code}' \
		-H "$H" -H "$CT" -d "{\"type\":\"media.probe\",\"payload\":{\"input\":\"$u\"}}" "$API/v1/jobs")"
done
before=$(redis_snap)
expect_eq "reconcile without Postgres -> 409" 409 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -X POST "$API/v1/reconcile")"
stop_api

# ---- with Postgres ---------------------------------------------------------
rcli flushall >/dev/null
out=$(DATABASE_URL=$DATABASE_URL "$API_BIN" migrate 2>&1)
check "wakeq-api migrate applies the schema" grep -q 'schema version' <<<"$out"
start_api DATABASE_URL="$DATABASE_URL"
setup_jobs
expect_eq "rows exist for the setup jobs" "cancelled queued" \
	"$(pg "select string_agg(status, ' ' order by id) from jobs where id in ('$DONE', '$QUEUED')")"
run_table postgres

# Postgres down: 503, and nothing reaches Redis.
stop_postgres
before=$(redis_snap)
r=$(curl -s -D "$T/h" -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")
expect_eq "postgres down -> 503 unavailable" unavailable "$(jq -r .error.code <<<"$r")"
check "postgres 503 has Retry-After" grep -qi '^Retry-After:' "$T/h"
expect_eq "postgres down -> nothing written to redis" "$before" "$(redis_snap)"
expect_eq "readyz says postgres down" down "$(curl -s "$API/readyz" | jq -r .postgres)"
restart_postgres
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $API/readyz) = 200 ]"
expect_eq "accepts again after postgres restart" 202 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")"

# Redis down: 503, and the row written first is taken back.
rows=$(pg 'select count(*) from jobs')
stop_redis
r=$(curl -s -H "$H" -H "$CT" -d '{"type":"noop"}' "$API/v1/jobs")
expect_eq "redis down -> 503 unavailable" unavailable "$(jq -r .error.code <<<"$r")"
expect_eq "redis down -> no row left in postgres" "$rows" "$(pg 'select count(*) from jobs')"
restart_redis
stop_api
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
