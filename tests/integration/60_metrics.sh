#!/usr/bin/env bash
# 60_metrics - metrics that outlive the worker. A real worker, woken by a
# real wakeq-api, runs jobs of three types (done, retried, dead-lettered);
# then the worker is gone and the API's /metrics still tells, from Redis:
# runs by type and outcome, wait and run time histograms, jobs by state,
# the backlog and the age of the oldest due job, wakes by trigger (api,
# cron, cli). `promtool check metrics` passes on the API's and the
# worker's /metrics. The KEDA configuration of
# docs/examples/keda/wakeq-drain.yaml is read and queried as KEDA does:
# its metrics-api trigger against GET /v1/queues/{q}, its Prometheus
# trigger's query against a real Prometheus scraping the API. Last, the
# Redis cost of a drain: client commands per job (MONITOR) and the
# commands scripts run (INFO commandstats), HINCRBY and PUBLISH per batch.
set -u
. "$(dirname "$0")/../lib/test.sh"
for tool in promtool prometheus; do
	command -v "$tool" >/dev/null ||
		{ not_ok "$tool present (Debian package prometheus: container/deps.sh install test)"; exit 1; }
done
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
start_redis

api_token metrics-token
post() { curl -s -H "$H" -H 'Content-Type: application/json' -d "$1" "$API/v1/jobs" | jq -r .id; }
# val FILE SERIES: the value of one series ("name{labels}") in a scrape
val() { awk -v s="$2" '$1 == s {print $2}' "$1"; }

# ---- jobs run by a worker the API wakes ------------------------------------------
start_worker w QUEUES=default IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false CONCURRENCY=2 \
	BACKOFF_BASE=0.05 LOG_LEVEL=warn
_start_api QUEUES=default WAKE_URL="$w_URL/wake"
for _ in 1 2 3 4 5; do post '{"type":"noop"}' >/dev/null; done
post '{"type":"sleep","payload":{"ms":300}}' >/dev/null
post '{"type":"sleep","payload":{"ms":300}}' >/dev/null
post '{"type":"fail","max_attempts":2,"payload":{"message":"again","retryable":true}}' >/dev/null
post '{"type":"fail","max_attempts":1,"payload":{"message":"never"}}' >/dev/null
check "the API woke the worker and every job ended (7 done, 2 dead)" wait_until 20 sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json --queue default | jq -c '[.default.done, .default.failed]')\" = '[7,2]' ]"
curl -fs -XPOST "$w_URL/wake" >/dev/null              # cron: a caller that names no trigger
wq wake "$w_URL/wake" >/dev/null 2>&1                 # cli
curl -fs "$w_URL/metrics" >"$T/worker.prom"
promtool check metrics <"$T/worker.prom" >"$T/promtool-w.log" 2>&1
rc=$?
expect_eq "promtool check metrics passes on the worker's /metrics" 0 "$rc"
[ "$rc" = 0 ] || diag "$T/promtool-w.log"
check "the worker's /metrics keeps its process figures" grep -q '^wakeq_jobs_total{outcome="done"} 7' "$T/worker.prom"
# A job that waits (no live worker once the drain retired), one for later.
QID=$(wq enqueue noop 2>/dev/null)
wq enqueue noop --delay 3600 >/dev/null 2>&1
kill_wait "$w_PID"
check "the worker is gone" exited "$w_PID"
sleep 1.2

# ---- the API's /metrics, from Redis ------------------------------------------------
curl -fs "$API/metrics" >"$T/api.prom"
promtool check metrics <"$T/api.prom" >"$T/promtool-a.log" 2>&1
rc=$?
expect_eq "promtool check metrics passes on the API's /metrics" 0 "$rc"
[ "$rc" = 0 ] || diag "$T/promtool-a.log"
M=$T/api.prom
Q='queue="default"'
expect_eq "Redis was read" 1 "$(val "$M" wakeq_redis_up)"
expect_eq "runs by type and outcome: noop done" 5 "$(val "$M" "wakeq_jobs_total{$Q,type=\"noop\",outcome=\"done\"}")"
expect_eq "sleep done" 2 "$(val "$M" "wakeq_jobs_total{$Q,type=\"sleep\",outcome=\"done\"}")"
expect_eq "fail: retried once, dead twice" "1 2" \
	"$(val "$M" "wakeq_jobs_total{$Q,type=\"fail\",outcome=\"retried\"}") $(val "$M" "wakeq_jobs_total{$Q,type=\"fail\",outcome=\"failed\"}")"
R='wakeq_job_run_seconds_bucket{queue="default",type="sleep"'
expect_eq "run time: both 300 ms sleeps above 0.25 s, at or under 0.5 s" "0 2 2" \
	"$(val "$M" "$R,le=\"0.25\"}") $(val "$M" "$R,le=\"0.5\"}") $(val "$M" "$R,le=\"+Inf\"}")"
check "run time sum of the sleeps: 0.6 to 1.5 s" awk -v s="$(val "$M" 'wakeq_job_run_seconds_sum{queue="default",type="sleep"}')" \
	'BEGIN {exit !(s >= 0.6 && s < 1.5)}'
expect_eq "wait times counted per start: noop 5, fail 3 (a retry starts again)" "5 3" \
	"$(val "$M" "wakeq_job_wait_seconds_count{$Q,type=\"noop\"}") $(val "$M" "wakeq_job_wait_seconds_count{$Q,type=\"fail\"}")"
expect_eq "buckets up to 3,600 s" 1 "$(grep -c '^wakeq_job_wait_seconds_bucket{queue="default",type="noop",le="3600"}' "$M")"
expect_eq "jobs by state: 1 queued, 1 scheduled, 7 done, 2 failed" "1 1 7 2" \
	"$(for s in queued scheduled done failed; do val "$M" "wakeq_queue_jobs{$Q,state=\"$s\"}"; done | tr '\n' ' ' | sed 's/ $//')"
expect_eq "backlog: the queued job (the scheduled one is not due)" 1 "$(val "$M" "wakeq_queue_backlog{$Q}")"
check "oldest due job waited >= 1 s: $(val "$M" "wakeq_queue_oldest_due_age_seconds{$Q}")" awk \
	-v a="$(val "$M" "wakeq_queue_oldest_due_age_seconds{$Q}")" 'BEGIN {exit !(a >= 1 && a < 60)}'
expect_eq "no live worker" 0 "$(val "$M" "wakeq_queue_workers{$Q}")"
expect_eq "wakes by trigger: api 1, cron 1, cli 1, fanout 0" "1 1 1 0" \
	"$(for t in api cron cli fanout; do val "$M" "wakeq_queue_wakes_total{$Q,trigger=\"$t\"}"; done | tr '\n' ' ' | sed 's/ $//')"
# They live in Redis: a new API process shows the same counters.
kill_wait "$API_PID"
_start_api QUEUES=default
curl -fs "$API/metrics" >"$T/api2.prom"
expect_eq "a restarted API shows the same counters" \
	"$(grep -E '^wakeq_(jobs_total|job_run_seconds_count|queue_wakes_total)' "$M")" \
	"$(grep -E '^wakeq_(jobs_total|job_run_seconds_count|queue_wakes_total)' "$T/api2.prom")"

# ---- the scaler's view: GET /v1/queues/{q} and the KEDA configuration ---------------
q=$(curl -s -H "$H" "$API/v1/queues/default")
expect_eq "GET /v1/queues/default: queued, backlog, workers" "1 1 0" "$(jq -r '"\(.queued) \(.backlog) \(.workers)"' <<<"$q")"
KEDA=$TOP/docs/examples/keda/wakeq-drain.yaml
"$PY" - "$KEDA" >"$T/keda.env" <<'EOF'
import shlex, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
job = [d for d in docs if d.get("kind") == "ScaledJob"][0]
auth = [d for d in docs if d.get("kind") == "TriggerAuthentication"][0]
trig = {t["type"]: t for t in job["spec"]["triggers"]}
m, p = trig["metrics-api"], trig["prometheus"]
refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
out = {
    "URL": m["metadata"]["url"], "LOC": m["metadata"]["valueLocation"],
    "TARGET": m["metadata"]["targetValue"], "AUTHMODE": m["metadata"]["authMode"],
    "AUTHREF": m["authenticationRef"]["name"], "AUTHNAME": auth["metadata"]["name"],
    "TOKENREF": "token" in refs and refs["token"]["name"] or "",
    "QUERY": p["metadata"]["query"], "THRESHOLD": p["metadata"]["threshold"],
    "ONCE": [e["value"] for e in job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["env"]
             if e["name"] == "ONCE"][0],
}
for k, v in out.items():
    print(f"K_{k}={shlex.quote(str(v))}")
EOF
check "the KEDA file parses: a ScaledJob with metrics-api and prometheus triggers" test -s "$T/keda.env"
. "$T/keda.env"
expect_eq "metrics-api: bearer auth through the TriggerAuthentication's token" "bearer wakeq-api token" \
	"$K_AUTHMODE $K_AUTHREF $( [ "$K_AUTHREF" = "$K_AUTHNAME" ] && [ -n "$K_TOKENREF" ] && echo token)"
expect_eq "the drain Job runs the worker in ONCE mode" true "$K_ONCE"
# KEDA's metrics-api scaler: GET url with "Authorization: Bearer TOKEN",
# the value at valueLocation (a GJSON path: here a plain field).
path=/${K_URL#*://*/}
got=$(curl -s -H "Authorization: Bearer $TOKEN" "$API$path" | jq -r ".$K_LOC")
expect_eq "metrics-api trigger reads the backlog from $path ($K_LOC)" 1 "$got"
check "its target is a number ($K_TARGET)" test "$K_TARGET" -gt 0
expect_eq "without the token the API refuses it" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' "$API$path")"

# KEDA's Prometheus scaler: its query against a Prometheus scraping the API.
PP=$($FREEPORT)
cat >"$T/prom.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: wakeq-api
    static_configs:
      - targets: ["${API#http://}"]
EOF
prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/prom" \
	--web.listen-address="127.0.0.1:$PP" >"$T/prometheus.log" 2>&1 &
PROM_PID=$!
on_exit "kill_wait $PROM_PID"
promq() { curl -s -G "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" |
	jq -r '.data.result[0].value[1] // empty'; }
check "Prometheus scrapes the API" wait_until 30 sh -c \
	"curl -s -G 'http://127.0.0.1:$PP/api/v1/query' --data-urlencode 'query=up{job=\"wakeq-api\"}' | jq -e '.data.result[0].value[1] == \"1\"' >/dev/null"
wait_until 10 sh -c "[ -n \"\$(curl -s -G 'http://127.0.0.1:$PP/api/v1/query' --data-urlencode 'query=$K_QUERY' | jq -r '.data.result[0].value[1] // empty')\" ]"
expect_eq "the Prometheus trigger's query ($K_QUERY) gives the backlog" 1 "$(promq "$K_QUERY")"
kill_wait "$PROM_PID"
[ "$_t_failed" = 0 ] || diag "$T/prometheus.log"

# ---- Redis cost per job ------------------------------------------------------------------
# 2,000 noop jobs drained by one worker: client commands are counted with
# MONITOR (lines not run by a script), script-run commands with
# INFO commandstats.
N=2000
wq enqueue noop --queue cost --count $N >/dev/null 2>&1
rcli config resetstat >/dev/null
redis-cli -p "$REDIS_PORT" monitor >"$T/monitor.txt" 2>/dev/null &
MON=$!
on_exit "kill_wait $MON"
sleep 0.3
start_worker c QUEUES=cost IDLE_TIMEOUT=0.3 LOG_LEVEL=warn
curl -fs -XPOST "$c_URL/wake" >"$T/drain.json"
wait_until 10 exited "$c_PID"
sleep 0.2
kill_wait "$MON"
expect_eq "the drain ran all $N jobs" $N "$(jq -r .drain.done "$T/drain.json")"
client=$(grep -v ' \[[0-9]* lua\] ' "$T/monitor.txt" | grep -c '^[0-9.]* \[')
rcli info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' >"$T/cmds"
calls() { awk -v c="$1" '$1 == c {n = $2} END {print n + 0}' "$T/cmds"; }
scripts=$(( $(calls evalsha) + $(calls eval) ))
inlua=$(grep -c ' \[[0-9]* lua\] ' "$T/monitor.txt")
hincr=$(grep ' \[[0-9]* lua\] "HINCRBY"' "$T/monitor.txt" | grep -c '"wakeq:{cost}:metrics"')
pub=$(grep -c ' \[[0-9]* lua\] "PUBLISH"' "$T/monitor.txt")
echo "# Redis cost of a $N-job drain: $client client commands ($(awk -v a="$client" -v n=$N 'BEGIN {printf "%.4f", a / n}') a job), $scripts script runs, $inlua commands inside scripts ($(awk -v a="$inlua" -v n=$N 'BEGIN {printf "%.2f", a / n}') a job); metrics: $hincr HINCRBY, events: $pub PUBLISH"
check "client commands per job <= 0.05 ($client for $N jobs)" test "$client" -le $((N / 20))
check "metrics cost a few HINCRBY per script run, not per job ($hincr for $scripts runs)" \
	test "$hincr" -le $((scripts * 8)) -a "$hincr" -lt $((N / 5))
check "events cost at most one PUBLISH per script run ($pub for $scripts runs)" test "$pub" -le "$scripts"
check "commands inside scripts: <= 5 a job ($inlua for $N jobs)" test "$inlua" -le $((N * 5))
pexp=$(grep -c ' \[[0-9]* lua\] "PEXPIRE"' "$T/monitor.txt")
expect_eq "done records age out in bulk: no PEXPIRE a job (docs/QUEUE.md \"Engine costs\")" 0 "$pexp"

# ---- Redis down: /metrics still answers, and says so -------------------------------------
stop_redis
curl -s -o "$T/down.prom" -w '%{http_code}' "$API/metrics" >"$T/down.code"
expect_eq "Redis down: /metrics answers 200 with wakeq_redis_up 0" "200 0" \
	"$(cat "$T/down.code") $(val "$T/down.prom" wakeq_redis_up)"
check "and promtool still accepts it" sh -c "promtool check metrics <'$T/down.prom' >/dev/null 2>&1"
[ "$_t_failed" = 0 ] || diag "$T/api.log"
exit 0
