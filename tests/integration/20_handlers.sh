#!/usr/bin/env bash
# 20_handlers - your own code as jobs, with the real binaries: a handler
# registry (HANDLERS_FILE) shared by the API and the worker; real python3,
# node and sh handlers (docs/examples/handlers and a misbehaving one)
# through POST /v1/jobs -> wake -> worker -> result: success, a retryable
# exit code with backoff, a hard failure to the dead letter, a timeout,
# cancels mid-run (one handler ignoring SIGTERM) with no process of their
# group left, progress over SSE, an oversized and an invalid result, a
# grandchild that outlives its parent, a fork bomb bounded by
# RLIMIT_NPROC, a persistent handler reused across jobs; bad input and a
# bad registry refused; the worker's memory flat throughout.
cd "$(dirname "$0")/../.."
source tests/lib/test.sh

EX=$TOP/docs/examples/handlers
MIS=$TOP/tests/integration/handlers/misbehave.py
PY=$(command -v /usr/bin/python3 || command -v python3)
NODE=$(command -v /usr/bin/node || command -v node)
mkdir -p "$T/work"
chmod 755 "$T/work"

# The bomb runs as nobody: RLIMIT_NPROC does not bind root.
BOMB_USER=
[ "$(id -u)" = 0 ] && BOMB_USER='"user": "nobody",'

cat >"$T/handlers.json" <<EOF
{
  "version": 1,
  "handlers": {
    "py.count": {
      "command": ["$PY", "$EX/wordcount.py"],
      "max_attempts": 2,
      "retry_exit_codes": [75],
      "schema": {"type": "object", "required": ["text"],
                 "properties": {"text": {"type": "string"}, "fail": {"enum": ["transient", "hard"]}}}
    },
    "js.slug": {"command": ["$NODE", "$EX/slugify.js"], "retry_exit_codes": [75]},
    "sh.sum": {"command": ["$EX/checksum.sh"]},
    "py.embed": {"command": ["$PY", "$EX/embed.py"], "persistent": true},
    "t.mis": {"command": ["$PY", "$MIS"], "kill_grace_s": 1, "max_attempts": 1,
              "result_max": "64K"},
    "sh.bomb": {
      "command": "i=0; while [ \$i -lt 500 ]; do sleep 30 & i=\$((i+1)); done; wait",
      "shell": true, $BOMB_USER
      "limits": {"processes": 20}, "timeout_s": 10, "max_attempts": 1
    }
  }
}
EOF

# ---- a bad registry stops start-up with one line -----------------------
sed 's/"max_attempts": 2,/"max_attempts": 0,/' "$T/handlers.json" >"$T/bad.json"
out=$(HANDLERS_FILE=$T/bad.json "$BIN/wakeq-worker" 2>&1)
rc=$?
expect_eq "worker refuses a bad HANDLERS_FILE (exit 2)" 2 "$rc"
expect_eq "... with one line naming file, line and problem" \
	"wakeq-worker: $T/bad.json:6: handler 'py.count': field 'max_attempts': expected an integer from 1 to 100" "$out"
out=$(HANDLERS_FILE=$T/bad.json REDIS_URL=$REDIS_URL NO_AUTH=1 PORT=0 "$BIN/wakeq-api" 2>&1)
rc=$?
expect_eq "API refuses the same file the same way" \
	"2 wakeq-api: $T/bad.json:6: handler 'py.count': field 'max_attempts': expected an integer from 1 to 100" \
	"$rc $out"
out=$(WAKEQ_HANDLER_X='{"command":["/no/such/prog"]}' "$BIN/wakeq-worker" 2>&1)
check "worker refuses a command it cannot run" contains "$out" "command '/no/such/prog' is not an executable file"

# ---- listings ----------------------------------------------------------------
export HANDLERS_FILE=$T/handlers.json
"$BIN/wakeq" handlers >"$T/list.txt"
check "wakeq handlers lists the registry with settings" \
	bash -c "grep -q '^py.count .*exec $PY $EX/wordcount.py .*attempts 2 .*retry_exit_codes 75 .*schema' '$T/list.txt' &&
		 grep -q '^py.embed .*exec persistent' '$T/list.txt' && grep -q '^noop .*built in' '$T/list.txt'"
check "wakeq-worker --help lists the registered types" \
	bash -c "'$BIN/wakeq-worker' --help | grep -q '^  sh.bomb .*exec sh -c'"

# ---- servers ---------------------------------------------------------------------
start_redis
api_token tok-20
start_worker worker QUEUES=default CONCURRENCY=4 IDLE_TIMEOUT=1 EXIT_ON_IDLE=false LEASE=3 \
	BACKOFF_BASE=0.3 BACKOFF_CAP=1 SHUTDOWN_GRACE=3 TMPDIR=$T/work LOG_FORMAT=json || exit 1
_start_api WAKE_URL="$worker_URL/wake" WORKER_CONCURRENCY=4 WAKE_BACKLOG=1

post() { # post TYPE PAYLOAD [EXTRA_FIELDS]: prints the id
	curl -s -H "$H" -H "$CT" -d "{\"type\":\"$1\",\"payload\":$2${3:+,$3}}" "$API/v1/jobs" | jq -r .id
}
# group_alive PGID: a process of that group that is not a zombie
group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {f=1} END {exit !f}'; }
gone() { ! group_alive "$1"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$worker_PID/status"; }
njobs() { rcli --scan --pattern 'wakeq:{default}:job:*' | wc -l; }

# ---- the CLI knows the registry too --------------------------------------------------
wqh() { REDIS_URL=$REDIS_URL "$BIN/wakeq" "$@"; }
msg=$(wqh enqueue py.count --payload '{}' 2>&1)
expect_eq "wakeq enqueue checks the type's schema (exit 2)" \
	"2 wakeq: payload field 'text' is required" "$? $msg"
CLI=$(wqh enqueue py.count --payload '{"text":"from the cli"}')
wqh wake "$worker_URL/wake?wait=0" >/dev/null
wait_final "$CLI"
expect_eq "wakeq enqueue of a handler type runs, with the type's max_attempts" "done 2 3" \
	"$(api_job "$CLI" | jq -r '"\(.status) \(.max_attempts) \(.result.words)"')"
check "the examples' registry is valid" \
	bash -c "HANDLERS_FILE='$EX/handlers.json' '$BIN/wakeq' handlers >/dev/null"

# ---- bad input: nothing enqueued --------------------------------------------------
before=$(njobs)
r=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"py.cnt","payload":{}}' "$API/v1/jobs")
expect_eq "unknown type -> 400" 400 "${r##* }"
check "... unknown_type naming the known ones" \
	bash -c "jq -e '.error.code == \"unknown_type\" and (.error.message | contains(\"py.count, js.slug\"))' <<<'${r% *}' >/dev/null"
r=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"py.count","payload":{"fail":"x"}}' "$API/v1/jobs")
expect_eq "payload failing the type's schema -> 400" 400 "${r##* }"
expect_eq "... invalid_payload naming the field" \
	"invalid_payload payload field 'text' is required" \
	"$(jq -r '.error.code + " " + .error.message' <<<"${r% *}")"
expect_eq "nothing was enqueued" "$before" "$(njobs)"

# ---- warm-up, then the memory baseline ------------------------------------------
for i in 1 2 3 4; do W[$i]=$(post sh.sum "{\"n\":$i}"); done
for i in 1 2 3 4; do wait_final "${W[$i]}"; done
RSS0=$(rss_kb)

# ---- cancels: started first, so they hold slots while the rest flows ---------------
C1=$(post t.mis '{"mode":"sleep"}')
C2=$(post t.mis '{"mode":"ignore_term"}')
pid_of() { api_field "$1" stage | sed -n 's/^pid=//p'; }
wait_until 15 bash -c "[ -n \"\$(curl -s -H '$H' $API/v1/jobs/$C1 | jq -r '.stage // empty' | sed -n 's/^pid=//p')\" ]"
wait_until 15 bash -c "[ -n \"\$(curl -s -H '$H' $API/v1/jobs/$C2 | jq -r '.stage // empty' | sed -n 's/^pid=//p')\" ]"
P1=$(pid_of "$C1")
P2=$(pid_of "$C2")
check "running handlers lead their own process groups" \
	bash -c "[ -n '$P1' ] && [ -n '$P2' ] && ps -o pgid= -p '$P1' | grep -qw '$P1' && ps -o pgid= -p '$P2' | grep -qw '$P2'"

# ---- everything else at once ----------------------------------------------------------
OKPY=$(post py.count '{"text":"one two three"}')
OKJS=$(post js.slug '{"title":"Héllo, Wörld!"}')
OKSH=$(post sh.sum '{"a":[1,2]}')
RETRY=$(post py.count '{"text":"x","fail":"transient"}')
HARD=$(post py.count '{"text":"x","fail":"hard"}')
TMO=$(post t.mis '{"mode":"sleep"}' '"timeout_s":1')
BAD=$(post t.mis '{"mode":"badjson"}')
BIG=$(post t.mis '{"mode":"big"}')
GRAND=$(post t.mis '{"mode":"grandchild"}')
PROG=$(post t.mis '{"mode":"progress"}')
curl -sN -H "$H" "$API/v1/jobs/$PROG/events" >"$T/sse.txt" &
SSE=$!
on_exit "kill $SSE"
BOMB=$(post sh.bomb '{}')
for i in $(seq 1 12); do E[$i]=$(post py.embed "{\"text\":\"job $i\"}"); done

# the cancels
t0=$(date +%s%N)
curl -s -o /dev/null -X DELETE -H "$H" "$API/v1/jobs/$C1"
curl -s -o /dev/null -X DELETE -H "$H" "$API/v1/jobs/$C2"
wait_final "$C1" 10
wait_final "$C2" 10
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "cancel mid-run -> cancelled" cancelled "$(api_field "$C1" status)"
expect_eq "a handler ignoring SIGTERM is cancelled too (SIGKILL after its grace)" cancelled "$(api_field "$C2" status)"
check "... within the grace and a heartbeat ($ms ms)" test "$ms" -lt 6000
wait_until 3 gone "$P1"
check "no process of the cancelled job's group is left (grandchild included)" gone "$P1"
wait_until 3 gone "$P2"
check "no process of the SIGTERM-ignoring job's group is left" gone "$P2"

for id in "$OKPY" "$OKJS" "$OKSH" "$RETRY" "$HARD" "$TMO" "$BAD" "$BIG" "$GRAND" "$PROG" "$BOMB"; do
	wait_final "$id" 30
done
for i in $(seq 1 12); do wait_final "${E[$i]}" 30; done

# ---- outcomes -------------------------------------------------------------------------------
expect_eq "python one-shot -> done with its result" '{"words":3,"chars":13,"attempt":1}' \
	"$(api_field "$OKPY" 'result|tojson')"
expect_eq "node one-shot -> done with its result" "hello-world $OKJS" \
	"$(api_job "$OKJS" | jq -r '.result.slug + " " + .result.job')"
expect_eq "sh one-shot -> done with its result" \
	"$(printf '%s' '{"a":[1,2]}' | sha256sum | cut -d' ' -f1)" "$(api_field "$OKSH" result.sha256)"
expect_eq "a retryable exit code is retried with backoff, then dead (attempts 2)" "failed 2" \
	"$(api_job "$RETRY" | jq -r '"\(.status) \(.attempts)"')"
check "... its error is the exit status and the handler's stderr" \
	contains "$(api_field "$RETRY" error)" "handler 'py.count' exited with status 75: upstream is busy, try again later"
expect_eq "a hard failure goes to the dead letter at once (attempts 1)" "failed 1" \
	"$(api_job "$HARD" | jq -r '"\(.status) \(.attempts)"')"
check "... and is listed there" bash -c "REDIS_URL=$REDIS_URL '$BIN/wakeq' dead list --json | grep -q '$HARD'"
expect_eq "timeout -> failed (max_attempts 1)" "failed timed out after 1s" \
	"$(api_job "$TMO" | jq -r '"\(.status) \(.error)"')"
PT=$(pid_of "$TMO")
check "... and its process group is gone" bash -c "[ -n '$PT' ] && ! ps -e -o pgid=,stat= | awk '\$1 == $PT && \$2 !~ /^Z/' | grep -q ."
expect_eq "invalid JSON on stdout -> failed, naming the handler" failed "$(api_field "$BAD" status)"
check "... with the parse error" contains "$(api_field "$BAD" error)" "handler 't.mis' wrote invalid JSON on stdout"
expect_eq "oversized result -> failed" \
	"failed handler 't.mis' wrote a result larger than 65536 bytes (result_max)" \
	"$(api_job "$BIG" | jq -r '"\(.status) \(.error)"')"
expect_eq "a handler whose grandchild outlives it -> done" done "$(api_field "$GRAND" status)"
G=$(api_field "$GRAND" result.grandchild)
check "... the grandchild was killed with the group" \
	wait_until 3 bash -c "! ps -o stat= -p '$G' | grep -qv Z"
wait_until 5 grep -q '^event: end' "$T/sse.txt"
check "progress from fd 3 over SSE (stage two at 50%)" \
	bash -c "grep '^data:' '$T/sse.txt' | sed 's/^data: //' | jq -s -e 'any(.[]; .progress == 50 and .stage == \"two\")' >/dev/null"
check "... and the stream ends with the done job" \
	bash -c "grep -A1 '^event: end' '$T/sse.txt' | grep -q '\"status\":\"done\"'"
expect_eq "fork bomb under RLIMIT_NPROC: bounded, the job fails" failed "$(api_field "$BOMB" status)"
check "... on the failed fork ($(api_field "$BOMB" error | cut -c1-80))" contains "$(api_field "$BOMB" error)" "fork"
if [ -n "$BOMB_USER" ]; then
	check "... and none of its processes is left" \
		wait_until 3 bash -c "[ \"\$(ps -u nobody -o stat= | grep -cv Z)\" = 0 ]"
fi
ndone=0
for i in $(seq 1 12); do [ "$(api_field "${E[$i]}" status)" = done ] && ndone=$((ndone + 1)); done
expect_eq "persistent python: 12 jobs done" 12 "$ndone"
npids=$(for i in $(seq 1 12); do api_field "${E[$i]}" result.pid; done | sort -u | wc -l)
check "... served by at most one process per slot ($npids for 12 jobs)" test "$npids" -le 4
check "no working directory left under the temp root" bash -c "[ -z \"\$(ls -A '$T/work')\" ]"
check "the worker stayed up" kill -0 "$worker_PID"
RSS1=$(rss_kb)
check "the worker's memory stayed flat (${RSS0} -> ${RSS1} KiB)" test "$RSS1" -le $((RSS0 + 4096))
no_handlers() { ! pgrep -f "$MIS" >/dev/null && ! pgrep -f "$EX/embed.py" >/dev/null; }
wait_until 5 no_handlers
check "no handler process is left (persistent ones stopped after IDLE_TIMEOUT)" no_handlers

# ---- SIGTERM of the worker re-queues a running handler's job ------------------------
SD=$(post t.mis '{"mode":"sleep"}')
wait_until 15 bash -c "[ -n \"\$(curl -s -H '$H' $API/v1/jobs/$SD | jq -r '.stage // empty' | sed -n 's/^pid=//p')\" ]"
PS=$(pid_of "$SD")
kill -TERM "$worker_PID"
wait_until 10 bash -c "! kill -0 $worker_PID 2>/dev/null"
rc=0
wait "$worker_PID" 2>/dev/null || rc=$?
expect_eq "SIGTERM: the worker exits 0 with a handler running" 0 "$rc"
expect_eq "... its job is back in the queue, the attempt not counted" "queued 0" \
	"$(api_job "$SD" | jq -r '"\(.status) \(.attempts)"')"
check "... and the handler's process group is gone" gone "$PS"

[ "$_t_failed" = 0 ] || { diag "$T/sse.txt"; diag "$T/worker.log" | tail -80; diag "$T/api.log" | tail -20; }
exit 0
