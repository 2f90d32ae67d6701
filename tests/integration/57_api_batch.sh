#!/usr/bin/env bash
# 57_api_batch - POST /v1/jobs group commit under concurrent requests:
# bursts of parallel POSTs are sent in batches (fewer batches than
# requests) and each request still gets its own answer; one idempotency
# key posted many times at once makes one job (one row) and every answer
# names it; a burst over two queues lands in each; a burst while Postgres
# or Redis is down is answered 503 each and leaves nothing behind.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis
start_postgres

api_token tok-57

start_api() { _start_api QUEUES=default,other INTAKE_THREADS=1 DATABASE_URL= "$@"; }
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
metric() { curl -s "$API/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# burst N BODY: N parallel POSTs of BODY; answers in $T/o/N, codes (sorted
# counts) on stdout as "202x40 200x10"
burst() {
	local n=$1 body=$2
	rm -rf "$T/o"
	mkdir -p "$T/o"
	curl -s --no-progress-meter -Z --parallel-max 64 -H "$H" -H "$CT" -d "$body" -o "$T/o/#1" \
		-w '%{http_code}\n' "$API/v1/jobs?n=[1-$n]" 2>/dev/null | sort | uniq -c |
		sort -k2,2r | awk '{printf "%s%sx%s", (NR > 1 ? " " : ""), $2, $1}'
}
ids() { cat "$T"/o/* | jq -r .id; }

# ---- Redis only ------------------------------------------------------------
start_api
b0=$(metric wakeq_api_intake_batches_total)
codes=$(burst 120 '{"type":"noop","payload":{"n":1}}')
expect_eq "120 parallel posts -> 120 x 202" "202x120" "$codes"
expect_eq "120 distinct ids" 120 "$(ids | sort -u | grep -c .)"
expect_eq "120 jobs pending" 120 "$(rcli zcard 'wakeq:{default}:pending')"
b1=$(metric wakeq_api_intake_batches_total)
check "sent in fewer batches than requests ($((b1 - b0)) < 120)" test $((b1 - b0)) -lt 120
check "and at least one batch" test $((b1 - b0)) -ge 1

codes=$(burst 40 '{"type":"noop","idempotency_key":"same-1"}')
expect_eq "one key posted 40 times at once -> one 202, 39 x 200" "202x1 200x39" "$codes"
expect_eq "every answer names the same job" 1 "$(ids | sort -u | grep -c .)"
expect_eq "one job in redis for the key" "$(ids | head -1)" "$(rcli get 'wakeq:{default}:idem:same-1')"
expect_eq "121 jobs pending" 121 "$(rcli zcard 'wakeq:{default}:pending')"

rm -rf "$T/o2"; mkdir -p "$T/o2"
curl -s --no-progress-meter -Z --parallel-max 64 -H "$H" -H "$CT" -o "$T/o2/a#1" -w '%{http_code}\n' \
	-d '{"type":"noop","queue":"other"}' "$API/v1/jobs?a=[1-30]" \
	--next -H "$H" -H "$CT" -o "$T/o2/b#1" -w '%{http_code}\n' \
	-d '{"type":"noop"}' "$API/v1/jobs?b=[1-30]" >"$T/codes2" 2>/dev/null
expect_eq "a burst over two queues -> 60 x 202" 60 "$(grep -c '^202$' "$T/codes2")"
expect_eq "30 landed in queue other" 30 "$(rcli zcard 'wakeq:{other}:pending')"
expect_eq "30 more in queue default" 151 "$(rcli zcard 'wakeq:{default}:pending')"
in_other=0
for f in "$T"/o2/a*; do
	[ "$(rcli hget "wakeq:{other}:job:$(jq -r .id "$f")" type)" = noop ] && in_other=$((in_other + 1))
done
expect_eq "each answer's id is a job of its own queue" 30 "$in_other"

# Redis down: every request of the burst is refused
stop_redis
codes=$(burst 30 '{"type":"noop"}')
expect_eq "redis down -> 30 x 503" "503x30" "$codes"
restart_redis
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $API/readyz) = 200 ]"
stop_api
rcli flushall >/dev/null

# ---- with Postgres ---------------------------------------------------------
start_api DATABASE_URL="$DATABASE_URL"
codes=$(burst 120 '{"type":"noop","payload":{"n":2}}')
expect_eq "postgres: 120 parallel posts -> 120 x 202" "202x120" "$codes"
expect_eq "postgres: 120 rows, one per answer" 120 \
	"$(pg "select count(*) from jobs where id in ($(ids | sed "s/.*/'&'/" | paste -sd,))")"
expect_eq "postgres: 120 jobs pending in redis" 120 "$(rcli zcard 'wakeq:{default}:pending')"

codes=$(burst 40 '{"type":"noop","idempotency_key":"same-2"}')
expect_eq "postgres: one key 40 times at once -> one 202, 39 x 200" "202x1 200x39" "$codes"
expect_eq "postgres: every answer names the same job" 1 "$(ids | sort -u | grep -c .)"
expect_eq "postgres: one row for the key" 1 "$(pg "select count(*) from jobs where idempotency_key = 'same-2'")"
expect_eq "postgres: the row is the answered job" "$(ids | head -1)" \
	"$(pg "select id from jobs where idempotency_key = 'same-2'")"
expect_eq "postgres: that job is in redis" noop "$(rcli hget "wakeq:{default}:job:$(ids | head -1)" type)"

# Postgres down: 503 each, nothing reaches Redis
stop_postgres
before=$(rcli dbsize)
codes=$(burst 30 '{"type":"noop"}')
expect_eq "postgres down -> 30 x 503" "503x30" "$codes"
expect_eq "postgres down -> nothing written to redis" "$before" "$(rcli dbsize)"
restart_postgres
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $API/readyz) = 200 ]"

# Redis down: 503 each, the rows written first are taken back
rows=$(pg 'select count(*) from jobs')
stop_redis
codes=$(burst 30 '{"type":"noop"}')
expect_eq "postgres, redis down -> 30 x 503" "503x30" "$codes"
expect_eq "redis down -> no row left in postgres" "$rows" "$(pg 'select count(*) from jobs')"
restart_redis
stop_api
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
