#!/usr/bin/env bash
# 30_store.sh - internal/store against a real Postgres (initdb in a temp
# dir): the cmocka program tests/unit/store/test_store_db.c, one "ok" line
# per test, plus migrations run by several processes at once and the schema
# they leave behind, checked with psql.
set -u
. "$(dirname "$0")/../lib/test.sh"

TOOL=$BIN/tests/unit/store/test_store_db
[ -x "$TOOL" ] || { not_ok "store: $TOOL not built (make tests)"; exit 1; }

start_postgres || { not_ok "store: postgres did not start"; exit 1; }
BASE=${DATABASE_URL%/postgres}
psql -q -d "$DATABASE_URL" -c 'CREATE DATABASE fresh' -c 'CREATE DATABASE race' \
	>/dev/null || { not_ok "store: cannot create databases"; exit 1; }

# ---- the cmocka program (TAP output: "ok N - name" / "not ok N - name")
PGBIN=$(pg_bin)
export STORE_TEST_FRESH_URL=$BASE/fresh
export STORE_PG_STOP="runuser -u postgres -- '$PGBIN/pg_ctl' -D '$PG_DIR/data' -m fast -w stop >/dev/null"
export STORE_PG_START="runuser -u postgres -- '$PGBIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/log' -w -o '-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null"
CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$TOOL" >"$T/tool.log" 2>&1
rc=$?
sed -n -e 's/^ok [0-9]* - /ok - store: /p' -e 's/^not ok [0-9]* - /not ok - store: /p' \
	"$T/tool.log"
grep -E '^# ' "$T/tool.log" || true
if [ "$rc" -ne 0 ]; then
	grep -q '^not ok' "$T/tool.log" || not_ok "store: test_store_db exited $rc"
	diag "$T/tool.log"
fi
# the server may have been left stopped by a failed outage test
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || restart_postgres

# ---- three processes migrate one database at once
for i in 1 2 3; do
	"$TOOL" migrate "$BASE/race" >"$T/mig$i.out" 2>&1 &
	pids[$i]=$!
done
fails=0
for i in 1 2 3; do wait "${pids[$i]}" || fails=$((fails + 1)); done
expect_eq "store: concurrent migrating processes all succeed" 0 "$fails"
applied=$(cat "$T"/mig?.out | awk '{s += $1} END {print s}')
NMIG=$(grep -c '^	{ [0-9]*, "' internal/store/store.c)
expect_eq "store: migrations applied exactly once in total" "$NMIG" "$applied"
expect_eq "store: schema_migrations has one row per version" "$NMIG" \
	"$(psql -tA -d "$BASE/race" -c 'SELECT count(*) FROM schema_migrations')"
expect_eq "store: a later migrate applies nothing" 0 "$("$TOOL" migrate "$BASE/race")"

# ---- the schema the migrations leave
cols=$(psql -tA -d "$BASE/race" -c "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'jobs'")
for want in id:uuid payload:jsonb result:jsonb status:text priority:integer \
	attempts:integer max_attempts:integer 'progress:double precision' \
	'created_at:timestamp with time zone' 'started_at:timestamp with time zone' \
	'finished_at:timestamp with time zone' 'updated_at:timestamp with time zone' \
	'run_at:timestamp with time zone' idempotency_key:text callback_url:text \
	stage:text error:text queue:text type:text 'timeout_s:double precision' \
	labels:jsonb; do
	case ",$cols," in
	*",$want,"*) ok "store: jobs column $want" ;;
	*) not_ok "store: jobs column $want missing (have $cols)" ;;
	esac
done
idx=$(psql -tA -d "$BASE/race" -c "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'jobs'")
expect_eq "store: jobs indexes" "jobs_idempotency,jobs_pkey,jobs_queue_status,jobs_unfinished" "$idx"
# the unique key is per queue and only where set
out=$(psql -tA -d "$BASE/race" 2>&1 <<'SQL'
INSERT INTO jobs (id, queue, type, status, idempotency_key) VALUES
 ('01890a5d-ac96-774b-bcce-b302099a8001', 'a', 'noop', 'queued', NULL),
 ('01890a5d-ac96-774b-bcce-b302099a8002', 'a', 'noop', 'queued', NULL),
 ('01890a5d-ac96-774b-bcce-b302099a8003', 'a', 'noop', 'queued', 'k'),
 ('01890a5d-ac96-774b-bcce-b302099a8004', 'b', 'noop', 'queued', 'k');
INSERT INTO jobs (id, queue, type, status, idempotency_key) VALUES
 ('01890a5d-ac96-774b-bcce-b302099a8005', 'a', 'noop', 'queued', 'k');
SQL
)
case $out in
*duplicate\ key*jobs_idempotency*) ok "store: idempotency key unique per queue in the schema" ;;
*) not_ok "store: idempotency key unique per queue in the schema (got: $out)" ;;
esac
out=$(psql -tA -d "$BASE/race" -c "UPDATE jobs SET status = 'finished'" 2>&1)
case $out in
*violates\ check\ constraint*) ok "store: status limited to the seven names" ;;
*) not_ok "store: status limited to the seven names (got: $out)" ;;
esac
exit 0
