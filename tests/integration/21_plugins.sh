#!/usr/bin/env bash
# 21_plugins - C handler plugins with the real binaries: the example plugin
# (docs/examples/plugin/wordcount.c, text.wordcount) registered through
# HANDLERS_FILE and run through POST /v1/jobs -> wake -> worker -> result:
# success, its state kept across jobs, progress over SSE, cancel mid-run,
# a retryable failure with backoff, a hard failure to the dead letter, a
# timeout, its schema at intake; plugins of another ABI, without the ABI
# symbol, missing or failing their init refused at start-up with one
# line; shutdown called at exit; and `make install` / `make uninstall`
# into a DESTDIR, with the example built against the installed header and
# the installed worker finding its media plugin in lib/wakeq.
cd "$(dirname "$0")/../.."
. tests/lib/test.sh

WC=$BIN/examples/wordcount.so
PL=$BIN/tests/plugins
for f in "$WC" "$PL/testplug.so" "$PL/badabi.so" "$PL/noabi.so"; do
	[ -f "$f" ] || { not_ok "$f missing (make tests)"; exit 1; }
done

# ---- refused at start-up, with one line ----------------------------------------
refused() { # refused NAME PATH TYPE WANT: a registry of one plugin entry
	cat >"$T/bad.json" <<EOF
{
  "handlers": {
    "$3": {"kind": "plugin", "path": "$2"}
  }
}
EOF
	local out rc
	out=$(HANDLERS_FILE=$T/bad.json "$BIN/wakeq-worker" 2>&1)
	rc=$?
	expect_eq "$1" "2 wakeq-worker: handler '$3' ($T/bad.json:3): $4" "$rc $out"
}
refused "a plugin of another ABI version stops start-up (exit 2, one line)" \
	"$PL/badabi.so" t.plug \
	"plugin '$PL/badabi.so' was built for handler ABI 999, this worker speaks ABI 1 (rebuild it against wakeq/handler.h)"
refused "a plugin without the ABI version symbol is refused" "$PL/noabi.so" t.plug \
	"plugin '$PL/noabi.so' is not a wakeq handler plugin: no symbol 'wakeq_handler_abi_version' (build it with WAKEQ_HANDLER_PLUGIN of wakeq/handler.h)"
refused "a missing plugin file is refused" "$T/nothere.so" t.plug \
	"cannot load plugin '$T/nothere.so': cannot open shared object file: No such file or directory"
refused "a plugin registered for a type it does not run is refused" "$WC" text.count \
	"plugin '$WC' does not run type 'text.count' (it runs: text.wordcount)"
refused "a plugin whose init fails is refused with its reason" "$PL/testplug.so" t.initfail \
	"plugin '$PL/testplug.so' failed to start: cannot open the model file '/nonexistent'"
out=$(WAKEQ_HANDLER_T__PLUG="{\"kind\":\"plugin\",\"path\":\"$PL/badabi.so\"}" "$BIN/wakeq-worker" 2>&1)
expect_eq "... the same from WAKEQ_HANDLER_<TYPE>" \
	"wakeq-worker: handler 't.plug' (WAKEQ_HANDLER_T__PLUG): plugin '$PL/badabi.so' was built for handler ABI 999, this worker speaks ABI 1 (rebuild it against wakeq/handler.h)" \
	"$out"

# ---- the registry ------------------------------------------------------------------
cat >"$T/handlers.json" <<EOF
{
  "version": 1,
  "handlers": {
    "text.wordcount": {
      "kind": "plugin",
      "path": "$WC",
      "max_attempts": 2,
      "concurrency": 2,
      "schema": {"type": "object", "required": ["text"],
                 "properties": {"text": {"type": "string"},
                                "delay_ms": {"type": "integer", "minimum": 0, "maximum": 2000},
                                "fail": {"enum": ["transient", "hard"]}}}
    }
  }
}
EOF
export HANDLERS_FILE=$T/handlers.json
check "wakeq handlers lists the plugin entry" \
	bash -c "'$BIN/wakeq' handlers | grep -q '^text.wordcount .*plugin $WC'"
check "the example registry (docs/examples/plugin/handlers.json) is valid" \
	bash -c "HANDLERS_FILE='$TOP/docs/examples/plugin/handlers.json' '$BIN/wakeq' handlers | grep -q '^text.wordcount .*plugin'"

# ---- servers ---------------------------------------------------------------------------
start_redis
api_token tok-21
start_worker worker QUEUES=default CONCURRENCY=4 IDLE_TIMEOUT=1 EXIT_ON_IDLE=false LEASE=3 \
	BACKOFF_BASE=0.3 BACKOFF_CAP=1 SHUTDOWN_GRACE=3 LOG_FORMAT=json || exit 1
_start_api WAKE_URL="$worker_URL/wake" WORKER_CONCURRENCY=4

post() { # post PAYLOAD [EXTRA_FIELDS]: prints the id
	curl -s -H "$H" -H "$CT" -d "{\"type\":\"text.wordcount\",\"payload\":$1${2:+,$2}}" \
		"$API/v1/jobs" | jq -r .id
}

# ---- bad input at intake ------------------------------------------------------------
r=$(curl -s -w ' %{http_code}' -H "$H" -H "$CT" -d '{"type":"text.wordcount","payload":{"txt":"a"}}' "$API/v1/jobs")
expect_eq "a payload failing the plugin type's schema -> 400 invalid_payload" \
	"400 invalid_payload payload field 'text' is required" \
	"${r##* } $(jq -r '.error.code + " " + .error.message' <<<"${r% *}")"

# ---- success, state, progress ---------------------------------------------------------
OK=$(post '{"text":"one two three"}')
wait_final "$OK"
expect_eq "API -> wake -> worker -> plugin -> result" \
	'done {"words":3,"lines":1,"chars":13,"runs":1}' \
	"$(api_job "$OK" | jq -c -r '"\(.status) \(.result|tojson)"')"

TEXT=$(printf 'w%.0s ' $(seq 1 200))
PROG=$(post "{\"text\":\"$TEXT\",\"delay_ms\":120}")
curl -sN -H "$H" "$API/v1/jobs/$PROG/events" >"$T/sse.txt" &
SSE=$!
on_exit "kill $SSE"
wait_final "$PROG"
wait_until 5 grep -q '^event: end' "$T/sse.txt"
check "progress from the plugin over SSE (stage counting, 10..90 %)" \
	bash -c "grep '^data:' '$T/sse.txt' | sed 's/^data: //' | jq -s -e '[.[] | select(.stage == \"counting\" and .progress >= 10 and .progress <= 90)] | length >= 2' >/dev/null"
expect_eq "... and the job is done with 200 words, its state kept across jobs (runs 2)" "done 200 2" \
	"$(api_job "$PROG" | jq -r '"\(.status) \(.result.words) \(.result.runs)"')"

# ---- cancel, failures, timeout ------------------------------------------------------------
CAN=$(post "{\"text\":\"$TEXT\",\"delay_ms\":1000}")
RETRY=$(post '{"text":"x","fail":"transient"}')
HARD=$(post '{"text":"x","fail":"hard"}')
TMO=$(post "{\"text\":\"$TEXT\",\"delay_ms\":400}" '"timeout_s":1,"max_attempts":1')
wait_until 10 bash -c "[ \"\$(curl -s -H '$H' $API/v1/jobs/$CAN | jq -r .status)\" = active ]"
sleep 0.3
t0=$(date +%s%N)
curl -s -o /dev/null -X DELETE -H "$H" "$API/v1/jobs/$CAN"
wait_final "$CAN" 10
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "cancel mid-run -> cancelled" cancelled "$(api_field "$CAN" status)"
check "... the plugin saw its cancel flag within a heartbeat and a step ($ms ms)" test "$ms" -lt 4000
for id in "$RETRY" "$HARD" "$TMO"; do wait_final "$id" 20; done
expect_eq "a retryable plugin error is retried with backoff, then dead (attempts 2)" \
	"failed 2 upstream is busy, try again later" \
	"$(api_job "$RETRY" | jq -r '"\(.status) \(.attempts) \(.error)"')"
expect_eq "a hard plugin error goes to the dead letter at once" "failed 1 this text cannot be counted" \
	"$(api_job "$HARD" | jq -r '"\(.status) \(.attempts) \(.error)"')"
check "... and is listed there" bash -c "REDIS_URL=$REDIS_URL '$BIN/wakeq' dead list --json | grep -q '$HARD'"
expect_eq "timeout -> the plugin stops, the job fails" "failed timed out after 1s" \
	"$(api_job "$TMO" | jq -r '"\(.status) \(.error)"')"
check "the worker stayed up" kill -0 "$worker_PID"

# ---- shutdown at exit ------------------------------------------------------------------------
kill -TERM "$worker_PID"
wait_until 10 bash -c "! kill -0 $worker_PID 2>/dev/null"
rc=0
wait "$worker_PID" 2>/dev/null || rc=$?
expect_eq "SIGTERM: the worker exits 0" 0 "$rc"
check "... after calling the plugin's shutdown (its own log line, through the worker's log)" \
	bash -c "grep '\"message\":\"wordcount: shutting down after' '$T/worker.log' | grep -q '\"handler\":\"text.wordcount\"'"

# ---- make install / uninstall --------------------------------------------------------------
R=$T/root
P=/opt/wq
if make -s -C "$TOP" install BUILD="$BUILD" SANITIZE="${SANITIZE:-0}" DESTDIR="$R" PREFIX="$P" \
	>"$T/install.log" 2>&1; then
	ok "make install DESTDIR=... PREFIX=$P"
else
	not_ok "make install DESTDIR=... PREFIX=$P"
	diag "$T/install.log"
fi
check "... installs the binaries, the media plugin and wakeq/handler.h" \
	test -x "$R$P/bin/wakeq-worker" -a -x "$R$P/bin/wakeq-api" -a -x "$R$P/bin/wakeq" \
	-a -f "$R$P/lib/wakeq/wakeq-media.so" -a -f "$R$P/include/wakeq/handler.h"
check "the example plugin builds against the installed header alone" \
	cc -std=c11 -Wall -Wextra -Werror -O1 -shared -fPIC -Wl,-z,defs -I"$R$P/include" \
	$(pkg-config --cflags jansson) -o "$T/wc.so" "$TOP/docs/examples/plugin/wordcount.c" \
	$(pkg-config --libs jansson)
mkdir -p "$T/data/in"
"$BIN/tests/tools/mkmedia" "$T/data/in/clip.mp4" -d 1 -s 160x120 -r 10 >/dev/null 2>&1
export WAKEQ_HANDLER_TEXT__WORDCOUNT="{\"kind\":\"plugin\",\"path\":\"$T/wc.so\"}"
unset HANDLERS_FILE
wqi() { REDIS_URL=$REDIS_URL "$BIN/wakeq" "$@" 2>/dev/null; }
m=$(wqi enqueue media.probe --queue inst --payload '{"input":"file://in/clip.mp4"}' --max-attempts 1)
w=$(wqi enqueue text.wordcount --queue inst --payload '{"text":"in stalled"}' --max-attempts 1)
env REDIS_URL=$REDIS_URL QUEUES=inst ONCE=true IDLE_TIMEOUT=0.2 DATA_DIR="$T/data" \
	"$R$P/bin/wakeq-worker" >"$T/inst.log" 2>&1
expect_eq "the installed worker runs the plugin built against the installed header" "done 2" \
	"$(wqi status --queue inst "$w" | jq -r '"\(.status) \(.result.words)"')"
expect_eq "... and finds its media plugin in lib/wakeq (a probe job done)" "done 1" \
	"$(wqi status --queue inst "$m" | jq -r '"\(.status) \(.result.duration_s | round)"')"
make -s -C "$TOP" uninstall BUILD="$BUILD" DESTDIR="$R" PREFIX="$P" >"$T/uninstall.log" 2>&1
check "make uninstall removes every file it installed" \
	bash -c "[ -z \"\$(find '$R' -type f)\" ] && [ ! -d '$R$P/lib/wakeq' ] && [ ! -d '$R$P/include/wakeq' ]"

[ "$_t_failed" = 0 ] || { diag "$T/sse.txt"; diag "$T/worker.log" | tail -60; diag "$T/api.log" | tail -20; diag "$T/inst.log"; }
exit 0
