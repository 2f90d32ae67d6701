#!/usr/bin/env bash
# 62_dashboard.sh - the dashboard (GET /dashboard) in a real browser:
# headless Chromium from Debian driven by puppeteer-core from npm
# (tests/tools/dashboard_check.js), against a real wakeq-api, Redis and
# wakeq-worker.
#
# Queue "default" is seeded with jobs in every state (done, failed and
# retrying by a real drain, one active held by qdrive, queued, scheduled,
# cancelled); queue "live" gets a job of a handler type that reports
# progress. The browser checks: no token and a wrong token show a message
# and no data; the counts as seeded; filters by type and by part of an id;
# a job followed live to done while the worker, woken from the page, runs
# it; a dead job retried from the page runs to done; retry all, purge and
# cancel; queue live's controls (its settings, a cron schedule paused,
# resumed and deleted from the page; a job's dependency, unique key
# and group; a batch's counts); an idle tab's Redis commands over 30 s and
# the API's VmRSS.
# Screenshots go to $BUILD/dashboard/ and are checked (not blank, key
# elements laid out). puppeteer-core is installed by this test into
# $BUILD/npm (once).
set -u
. "$(dirname "$0")/../lib/test.sh"

PUPPETEER_VERSION=24.43.1 # the last line for Node.js 18 and 20 (bookworm has 18)
NPM_DIR=$BIN/npm
OUT=$BIN/dashboard

CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
	not_ok "Debian's chromium is needed to test the dashboard in a browser (container/deps.sh install test)"
	exit 1
fi
installed() { # installed PACKAGE VERSION
	[ "$(node -p "require('$NPM_DIR/node_modules/$1/package.json').version" \
		2>/dev/null)" = "$2" ]
}
if ! installed puppeteer-core "$PUPPETEER_VERSION"; then
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		not_ok "node and npm are needed to install puppeteer-core (container/deps.sh install test)"
		exit 1
	fi
	mkdir -p "$NPM_DIR"
	# the browser is Debian's: puppeteer downloads none
	if ! PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm install --prefix "$NPM_DIR" --no-audit \
		--no-fund --loglevel=error "puppeteer-core@$PUPPETEER_VERSION" >"$T/npm.log" 2>&1; then
		not_ok "cannot install puppeteer-core@$PUPPETEER_VERSION from the npm registry: the dashboard cannot be driven in a browser"
		diag "$T/npm.log"
		exit 1
	fi
fi
check "puppeteer-core $PUPPETEER_VERSION is installed" installed puppeteer-core "$PUPPETEER_VERSION"

start_redis
TOKEN=dash-$RANDOM-token
unset WAKE_URL WAKE_TOKEN WAKEQ_API_URL

# A handler type that reports progress: STEPS lines on fd 3, 0.4 s apart;
# it fails for good while the file NEED (when given) does not exist.
cat >"$T/steps.sh" <<'EOF'
p=$(cat)
steps=$(printf '%s' "$p" | /usr/bin/jq -r '.steps // 5')
need=$(printf '%s' "$p" | /usr/bin/jq -r '.need // ""')
if [ -n "$need" ] && [ ! -e "$need" ]; then
	echo "needs $need" >&2
	exit 3
fi
i=1
while [ "$i" -le "$steps" ]; do
	printf '{"progress":%d,"stage":"step-%d"}\n' $((i * 100 / (steps + 1))) "$i" >&3
	sleep 0.4
	i=$((i + 1))
done
printf '{"steps":%d}\n' "$steps"
EOF
cat >"$T/handlers.json" <<EOF
{"handlers": {"demo.steps": {"command": ["/bin/sh", "$T/steps.sh"], "timeout_s": 60,
  "schema": {"type": "object", "properties": {"steps": {"type": "integer"}, "need": {"type": "string"}}}}}}
EOF
export HANDLERS_FILE=$T/handlers.json

# ---- queue "default" in every state -------------------------------------------
wq enqueue noop --count 3 >/dev/null
wq enqueue sleep --payload '{"ms":5}' >/dev/null
wq enqueue fail --payload '{"message":"bad input: no such file"}' --max-attempts 1 >/dev/null
FLAKY_ID=$(wq enqueue demo.steps --payload "{\"steps\":3,\"need\":\"$T/flag\"}" --max-attempts 1)
wq enqueue fail --payload '{"message":"upstream answered 503","retryable":true}' --max-attempts 5 >/dev/null
BACKOFF_BASE=600 IDLE_TIMEOUT=0.5 QUEUES=default wq drain >"$T/drain.log" 2>&1
wq enqueue noop --priority 0 >/dev/null
"$BIN/tests/tools/qdrive" "$REDIS_URL" default run 1200 100 >"$T/qdrive.log" 2>&1 &
QDRIVE_PID=$!
on_exit "kill_wait $QDRIVE_PID"
wait_until 10 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue default | jq .default.active)\" = 1 ]" ||
	not_ok "qdrive holds a job active"
wq enqueue noop --priority 5 --count 3 >/dev/null
wq enqueue noop --delay 3600 --count 2 >/dev/null
CANCEL_ID=$(wq enqueue noop --delay 3600)
wq cancel "$CANCEL_ID" >/dev/null
EXPECT='{"queued":3,"scheduled":2,"active":1,"retrying":1,"done":4,"failed":2,"cancelled":1}'
got=$(wq stats --json --queue default | jq -c "{queued:.default.queued,scheduled:.default.scheduled,active:.default.active,retrying:.default.retrying,done:.default.done,failed:.default.failed,cancelled:.default.cancelled}")
expect_eq "queue default is seeded with jobs in every state" "$EXPECT" "$got"

# ---- the worker (asleep until woken) and the API ---------------------------------
start_worker w QUEUES=default,live EXIT_ON_IDLE=false IDLE_TIMEOUT=2 CONCURRENCY=2 || exit 1
API_PORT=$($FREEPORT)
env PORT="$API_PORT" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN="$TOKEN" \
	QUEUES=default,live RECONCILE_INTERVAL=0 WAKE_URL="$w_URL/wake" \
	"$BIN/wakeq-api" >"$T/api.log" 2>&1 &
API_PID=$!
on_exit "kill_wait $API_PID"
API=http://127.0.0.1:$API_PORT
wait_until "$START_S" curl -fs "$API/healthz" >/dev/null || { not_ok "wakeq-api started"; diag "$T/api.log"; exit 1; }

# ---- queue "live"'s controls: settings, cron schedules, a dependency, a batch --------
# The queue is paused while they are seeded, so the API's enqueue of the
# batch wakes no worker, and resumed by the CLI, which has no WAKE_URL:
# nothing runs them before the worker is woken from the page. The limits
# are loose enough for the jobs run later; the cron fires on 1 January only
# (and the page deletes it: the idle tab below measures two queues without).
api_token "$TOKEN"
call() { curl -fsS -H "$H" -H "$CT" -X "$1" --data "$3" "$API$2"; }
call POST /v1/queues/live/pause '' >/dev/null || not_ok "queue live is paused for the seeding"
call PUT /v1/queues/live/settings '{"rate_max":50,"rate_period_s":60,"concurrency":4,
	"group_rate_max":10,"group_rate_period_s":1,"group_concurrency":2,"done_max":500,
	"dead_ttl_s":86400}' >/dev/null &&
	call POST /v1/schedules '{"name":"nightly-report","queue":"live","cron":"0 3 1 1 *",
	"timezone":"Europe/Paris","job":{"type":"noop"}}' >/dev/null
check "queue live's settings and a cron schedule are set" test $? = 0
PARENT_ID=$(wq enqueue noop --queue live)
CHILD_ID=$(wq enqueue noop --queue live --depends-on "$PARENT_ID" --unique-key report-42 --group acme)
BATCH=$(call POST /v1/batches '{"queue":"live","jobs":[{"type":"noop"},{"type":"noop"}]}')
BATCH_ID=$(jq -r .id <<<"$BATCH")
BATCH_JOB=$(jq -r '.jobs[0]' <<<"$BATCH")
wq resume live >/dev/null
check "a job with a dependency and a unique key, and a batch of two, are in queue live" \
	test -n "$CHILD_ID" -a "$(api_field "$CHILD_ID" status)" = waiting -a -n "$BATCH_JOB"

# ---- the browser ---------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
NODE_PATH=$NPM_DIR/node_modules BASE=$API TOKEN=$TOKEN CHROMIUM=$CHROMIUM OUT=$OUT \
	REDIS_PORT=$REDIS_PORT API_PID=$API_PID QDRIVE_PID=$QDRIVE_PID WQ=$BIN/wakeq \
	FLAG=$T/flag FLAKY_ID=$FLAKY_ID EXPECT=$EXPECT HOME=$T PARENT_ID=$PARENT_ID \
	CHILD_ID=$CHILD_ID BATCH_ID=$BATCH_ID BATCH_JOB=$BATCH_JOB \
	timeout 300 node "$TOP/tests/tools/dashboard_check.js" >"$T/check.log" 2>"$T/check.err"
rc=$?
cat "$T/check.log"
check "the browser session passed" test "$rc" = 0 -a -s "$T/check.log"
if [ "$rc" != 0 ]; then
	diag "$T/check.err"
	tail -20 "$T/api.log" | diag
	tail -20 "$T/w.log" | diag
fi
for f in dashboard-queues.png dashboard-controls.png dashboard-job.png; do
	check "screenshot $f written under $BUILD/dashboard" test -s "$OUT/$f"
done
exit 0
