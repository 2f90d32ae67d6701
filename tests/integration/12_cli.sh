#!/usr/bin/env bash
# The operator CLI against a real redis-server (and Postgres for reconcile
# and the API): commands, --help of each, options of another command
# refused, JSON output, exit codes and error messages; enqueue through a
# real wakeq-api, and straight into Redis with a wake of a stub worker;
# status --watch by outcome; stats --watch; the completion scripts; flows
# and batches from a file (straight into Redis, run by a drain, and through
# the API), bad documents refused; schedules get.
# (What only a terminal shows, tables and bars, is 16_cli_tty.sh.)
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

code() { "$@" >/dev/null 2>&1; echo $?; }

check "--help prints the commands" sh -c "'$BIN/wakeq' --help | grep -q 'dead list'"
expect_eq "no command is a usage error (2)" 2 "$(code "$BIN/wakeq")"

# --version: one string for the three binaries
v=$("$BIN/wakeq" --version)
check "wakeq --version prints a version ($v)" contains "$v" "wakeq "
expect_eq "wakeq-api --version prints the same version" "wakeq-api ${v#wakeq }" "$("$BIN/wakeq-api" --version)"
expect_eq "wakeq-worker --version prints the same version" "wakeq-worker ${v#wakeq }" \
	"$("$BIN/wakeq-worker" --version 2>&1)"
check "the version is not empty" test -n "${v#wakeq }"

# --help of every command, with its own options and no other
helps() { # helps CMD OPT...: CMD --help exits 0, shows its usage and each OPT
	local cmd=$1 out o
	shift
	out=$("$BIN/wakeq" $cmd --help 2>&1) || { not_ok "wakeq $cmd --help exits 0"; return; }
	contains "$out" "usage: wakeq $cmd" || { not_ok "wakeq $cmd --help shows its usage ($out)"; return; }
	for o in "$@"; do
		contains "$out" "  $o" || { not_ok "wakeq $cmd --help lists $o"; return; }
	done
	ok "wakeq $cmd --help: its usage and options ${*:-(none)}"
}
helps enqueue --payload --queue --priority --delay --max-attempts --timeout --idempotency-key --callback-url --count
helps status --queue --watch
helps cancel --queue
helps jobs --queue --state --type --limit --json --table
helps stats --queue --json --watch --interval
helps "dead list" --queue --type --limit --json --table
helps "dead retry" --queue --all --type
helps "dead purge" --queue
helps drain --queue
helps wake --token --timeout
helps reconcile --min-age
helps completion
helps "schedules get" --queue
helps flow --queue
helps "batch create" --queue
check "jobs --help lists no option of enqueue" sh -c "! '$BIN/wakeq' jobs --help | grep -q -- --payload"
check "help COMMAND is COMMAND --help" sh -c "'$BIN/wakeq' help dead retry | grep -q 'usage: wakeq dead retry'"
check "dead --help lists the dead commands" sh -c "'$BIN/wakeq' dead --help | grep -q 'wakeq dead purge'"
expect_eq "dead without its command is a usage error (2)" 2 "$(code wq dead)"

# an option of another command is refused, naming whose it is
msg=$(wq enqueue noop --queue cliref --json 2>&1)
expect_eq "enqueue --json is refused (2)" 2 "$(code wq enqueue noop --queue cliref --json)"
check "naming the commands it belongs to ($msg)" contains "$msg" \
	"option '--json' is not an option of 'enqueue' (it is one of: jobs, stats, dead list, handlers)"
expect_eq "and nothing was enqueued" 0 "$(rcli exists 'wakeq:{cliref}:pending')"
msg=$(wq dead purge --all 2>&1)
check "dead purge --all is refused ($msg)" contains "$msg" "option '--all' is not an option of 'dead purge' (it is one of: dead retry)"
expect_eq "stats --payload is refused (2)" 2 "$(code wq stats --payload '{}')"
expect_eq "jobs --watch is refused (2)" 2 "$(code wq jobs --watch)"
expect_eq "wake --queue is refused (2)" 2 "$(code wq wake http://127.0.0.1:1/wake --queue x)"
msg=$(wq jobs --frobnicate 2>&1)
check "an option of no command is unknown ($msg)" contains "$msg" "unknown option '--frobnicate'"
expect_eq "a flag given a value is refused (2)" 2 "$(code wq jobs --json=yes)"
expect_eq "an option without its value is refused (2)" 2 "$(code wq jobs --limit)"
expect_eq "a second ID is refused (2)" 2 "$(code wq status 01a20466-181e-7014-b516-77142d772f9d x)"
expect_eq "an unknown command is a usage error (2)" 2 "$(code wq frobnicate)"
expect_eq "a bad priority is a usage error (2)" 2 "$(code wq enqueue noop --priority 10)"
expect_eq "a bad delay is a usage error (2)" 2 "$(code wq enqueue noop --delay soon)"
msg=$(wq enqueue sleep --payload '{"ms":"x"}' 2>&1)
check "a bad payload names the field ($msg)" contains "$msg" "payload field 'ms' must be a number"
expect_eq "a bad queue name is refused (2)" 2 "$(code wq enqueue noop --queue 'a b')"
expect_eq "status of an unknown id exits 3" 3 "$(code wq status 01a20466-181e-7014-b516-77142d772f9d)"
msg=$(REDIS_URL=redis://127.0.0.1:1 "$BIN/wakeq" stats 2>&1)
expect_eq "redis down exits 1" 1 "$(REDIS_URL=redis://127.0.0.1:1 "$BIN/wakeq" stats >/dev/null 2>&1; echo $?)"
check "and says why ($msg)" contains "$msg" "cannot connect to redis"

ids=$(wq enqueue noop --queue cli --count 2500)
expect_eq "--count enqueues in batches, one id a line" 2500 "$(echo "$ids" | sort -u | wc -l)"
expect_eq "stats --json counts them" 2500 "$(wq stats --json | jq '.cli.queued')"
check "stats (text) has a row for the queue" sh -c "REDIS_URL=$REDIS_URL $BIN/wakeq stats | grep -q '^cli '"
one=$(echo "$ids" | head -1)
expect_eq "status finds a job without --queue" queued "$(wq status "$one" | jq -r .status)"
check "status shows the DESIGN fields" sh -c "REDIS_URL=$REDIS_URL $BIN/wakeq status $one | jq -e 'has(\"id\") and has(\"queue\") and has(\"type\") and has(\"status\") and has(\"priority\") and has(\"attempts\") and has(\"max_attempts\") and has(\"progress\") and has(\"stage\") and has(\"payload\") and has(\"result\") and has(\"error\") and has(\"created_at\") and has(\"started_at\") and has(\"finished_at\") and has(\"run_at\")' >/dev/null"
expect_eq "cancel a queued job" cancelled "$(wq cancel --queue cli "$one")"
expect_eq "cancel it again: conflict (4)" 4 "$(code wq cancel --queue cli "$one")"

# max_attempts: the API's range (JOB_MAX_ATTEMPTS_MAX), in the config's words
msg=$(wq enqueue noop --queue clim --max-attempts 101 2>&1)
expect_eq "--max-attempts 101 is a usage error (2)" 2 "$(code wq enqueue noop --queue clim --max-attempts 101)"
check "and names the API's range ($msg)" contains "$msg" "bad --max-attempts '101': expected an integer from 1 to 100"
expect_eq "--max-attempts 100 is taken" 100 "$(job_field "$(wq enqueue noop --queue clim --max-attempts 100)" max_attempts)"

# RESULT_TTL: a job the CLI cancels keeps its record as long as the
# worker's finished jobs do (same variable, bounds and default)
c=$(wq enqueue noop --queue clittl)
expect_eq "cancel with RESULT_TTL=120" cancelled "$(RESULT_TTL=120 wq cancel --queue clittl "$c")"
ttl=$(rcli pttl "wakeq:{clittl}:job:$c")
check "the cancelled record expires after RESULT_TTL, not a day later ($ttl ms)" test "$ttl" -gt 0 -a "$ttl" -le 120000
c=$(wq enqueue noop --queue clittl)
wq cancel --queue clittl "$c" >/dev/null
ttl=$(rcli pttl "wakeq:{clittl}:job:$c")
check "without RESULT_TTL: the worker's default, 86400 s ($ttl ms)" test "$ttl" -gt 86000000 -a "$ttl" -le 86400000
msg=$(RESULT_TTL=0 wq stats 2>&1)
expect_eq "a bad RESULT_TTL stops the CLI (2)" 2 "$(RESULT_TTL=0 code wq stats)"
check "with one line naming it ($msg)" contains "$msg" "bad RESULT_TTL '0': expected an integer from 1 to 31536000"

# drain: the cron mode runs everything due in-process and exits 0
t0=$(date +%s%N)
IDLE_TIMEOUT=0.3 QUEUES=cli wq drain >"$T/drain.log" 2>&1
rc=$?
expect_eq "wakeq drain exits 0" 0 "$rc"
expect_eq "wakeq drain ran every due job" 2499 "$(wq stats --json | jq '.cli.done')"
check "wakeq drain returned soon after idle ($((($(date +%s%N) - t0) / 1000000)) ms)" test $((($(date +%s%N) - t0) / 1000000)) -lt 8000

# dead letters
d=$(wq enqueue fail --queue cli --payload '{"message":"nope"}')
IDLE_TIMEOUT=0.2 QUEUES=cli wq drain >/dev/null 2>&1
expect_eq "dead list shows the failed job" "$d" "$(wq dead list --queue cli | jq -r ".[].id")"
expect_eq "dead retry moves it back" "queued $d" "$(wq dead retry --queue cli "$d")"
expect_eq "dead retry of a live job conflicts (4)" 4 "$(code wq dead retry --queue cli "$d")"
IDLE_TIMEOUT=0.2 QUEUES=cli wq drain >/dev/null 2>&1
expect_eq "dead purge deletes them" "purged 1" "$(wq dead purge --queue cli)"
expect_eq "the purged job is gone (3)" 3 "$(code wq status --queue cli "$d")"

# wake: one POST to a worker's /wake, with its token
wq enqueue noop --queue cliw >/dev/null
start_worker cw QUEUES=cliw IDLE_TIMEOUT=5 WAKE_TOKEN=tk
expect_eq "wake without the token fails (1)" 1 "$(code wq wake "$cw_URL/wake?wait=0")"
expect_eq "wake with --token succeeds" 0 "$(code wq wake "$cw_URL/wake?wait=0" --token tk)"
check "the woken worker ran the job" wait_until 5 sh -c "[ \$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json | jq .cliw.done) = 1 ]"
expect_eq "wake of a bad URL is a usage error (2)" 2 "$(code wq wake ftp://x)"

# a held wake (the default): the worker drains, then answers its summary,
# which the CLI prints; one held past --timeout was sent and is being
# served: woken too, not "Timeout was reached"
start_worker ch QUEUES=clih IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false
wq enqueue sleep --queue clih --payload '{"ms":1200}' >/dev/null
t0=$(date +%s%N)
out=$(wq wake "$ch_URL/wake" 2>&1)
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "a held wake that ends in a drain report exits 0 ($out)" 0 "$rc"
check "it was held while the job ran ($ms ms)" test "$ms" -ge 1200
expect_eq "and prints the drain report" "1 idle" "$(echo "$out" | jq -r '"\(.drain.done) \(.drain.reason)"' 2>&1)"
wq enqueue sleep --queue clih --payload '{"ms":2500}' >/dev/null
out=$(wq wake "$ch_URL/wake" --timeout 1 2>&1)
expect_eq "a wake held past --timeout 1 exits 0 ($out)" 0 "$?"
check "and says the worker is still draining" contains "$out" "still draining after 1 s"
check "that drain runs the job to the end" wait_until 10 sh -c "[ \$(REDIS_URL=$REDIS_URL $BIN/wakeq stats --json | jq .clih.done) = 2 ]"

# REDIS_URL forms: a password and a db number, and a unix socket
SP=$($FREEPORT)
mkdir -p "$T/r2"
redis-server --port "$SP" --bind 127.0.0.1 --unixsocket "$T/r2/sock" --unixsocketperm 700 \
	--requirepass 'p@ss w' --dir "$T/r2" --save '' --daemonize no --loglevel warning &
r2=$!
on_exit "kill_wait $r2"
wait_until 5 sh -c "redis-cli -p $SP -a 'p@ss w' --no-auth-warning ping | grep -q PONG"
id=$(REDIS_URL="redis://:p%40ss%20w@127.0.0.1:$SP/3" "$BIN/wakeq" enqueue noop)
expect_eq "a password (percent-encoded) and db 3 in the URL" 1 "$(redis-cli -p "$SP" -a 'p@ss w' --no-auth-warning -n 3 zcard 'wakeq:{default}:pending')"
expect_eq "a unix socket URL with db and password sees the same job" queued "$(REDIS_URL="unix://$T/r2/sock?db=3&password=p%40ss%20w" "$BIN/wakeq" status "$id" 2>&1 | jq -r .status 2>/dev/null || echo auth-needed)"
msg=$(REDIS_URL="redis://:wrong@127.0.0.1:$SP" "$BIN/wakeq" stats 2>&1)
check "a wrong password is one clear error ($msg)" contains "$msg" "redis refused the password"

# reconcile: Postgres rows that Redis lost are enqueued again
start_postgres
APORT=$($FREEPORT)
env PORT="$APORT" REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" NO_AUTH=true RECONCILE_INTERVAL=0 RESULT_TTL=150 \
	"$BIN/wakeq-api" >"$T/api.log" 2>&1 &
apid=$!
on_exit "kill_wait $apid"
wait_until "$START_S" curl -fs "http://127.0.0.1:$APORT/healthz" >/dev/null
j=$(curl -fs -H 'Content-Type: application/json' -d '{"type":"noop"}' "http://127.0.0.1:$APORT/v1/jobs" | jq -r .id)
rcli flushall >/dev/null
expect_eq "after FLUSHALL the job is gone from Redis (3)" 3 "$(code wq status "$j")"
out=$(DATABASE_URL=$DATABASE_URL wq reconcile --min-age 0.001)
check "reconcile reports the re-enqueue ($out)" contains "$out" "requeued 1"
expect_eq "the job is queued again with the same id" queued "$(wq status "$j" | jq -r .status)"
expect_eq "reconcile without DATABASE_URL is a usage error (2)" 2 "$(DATABASE_URL= code wq reconcile)"

# the API beside the CLI: the same max_attempts range and words, and its
# cancels follow RESULT_TTL too
API=http://127.0.0.1:$APORT
msg=$(curl -s -H 'Content-Type: application/json' -d '{"type":"noop","max_attempts":101}' "$API/v1/jobs" | jq -r .error.message)
check "the API refuses max_attempts 101 with the CLI's range ($msg)" contains "$msg" "expected an integer from 1 to 100"
j=$(curl -fs -H 'Content-Type: application/json' -d '{"type":"noop","delay_s":600}' "$API/v1/jobs" | jq -r .id)
expect_eq "the API cancels a scheduled job" 200 "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$API/v1/jobs/$j")"
ttl=$(rcli pttl "wakeq:{default}:job:$j")
check "its record expires after the API's RESULT_TTL ($ttl ms)" test "$ttl" -gt 0 -a "$ttl" -le 150000

# ---- jobs: JSON when not on a terminal, or a table when asked -------------
j1=$(wq enqueue noop --queue clij 2>/dev/null)
j2=$(wq enqueue sleep --queue clij --payload '{"ms":1}' 2>/dev/null)
j3=$(wq enqueue noop --queue clij 2>/dev/null)
j4=$(wq enqueue noop --queue clij --delay 600 2>/dev/null)
out=$(wq jobs --queue clij)
expect_eq "jobs (not a terminal) is a JSON array of the queue's jobs" "$j1 $j2 $j3 $j4" \
	"$(echo "$out" | jq -r '[.[].id] | join(" ")')"
check "each one the job document of status" sh -c "echo '$out' | jq -e '.[0] | has(\"payload\") and has(\"run_at\") and .queue == \"clij\"' >/dev/null"
expect_eq "jobs --type sleep" "$j2" "$(wq jobs --queue clij --type sleep | jq -r '.[].id')"
expect_eq "jobs --state scheduled" "$j4" "$(wq jobs --queue clij --state scheduled | jq -r '.[].id')"
expect_eq "jobs --limit 2" 2 "$(wq jobs --queue clij --limit 2 | jq length)"
expect_eq "jobs --json is JSON too" 4 "$(wq jobs --queue clij --json | jq length)"
check "jobs without --queue sees every queue" sh -c "REDIS_URL=$REDIS_URL $BIN/wakeq jobs --state scheduled | jq -e '[.[].id] | index(\"$j4\")' >/dev/null"
expect_eq "jobs of an empty state is []" "[]" "$(wq jobs --queue clij --state failed)"
out=$(wq jobs --queue clij --table)
expect_eq "jobs --table: a header and a row per job" 5 "$(echo "$out" | wc -l)"
check "with the columns ($(echo "$out" | head -1))" sh -c "echo '$out' | head -1 | grep -Eq '^ID +QUEUE +TYPE +STATE +ATTEMPTS +PROGRESS +AGE +STAGE/ERROR'"
check "a row: id, queue, type, state, attempts" sh -c "echo '$out' | grep -Eq '^$j2 +clij +sleep +queued +0/3 '"
expect_eq "a bad --state is a usage error (2)" 2 "$(code wq jobs --state sleeping)"
expect_eq "an unknown --type is a usage error (2)" 2 "$(code wq jobs --type nope)"

# ---- dead list and dead retry --all ---------------------------------------
for i in 1 2 3; do wq enqueue fail --queue clid --payload "{\"message\":\"nope $i\"}" 2>/dev/null; done >/dev/null
# an http.request to a refused address fails for good: a dead job of another type
h=$(wq enqueue http.request --queue clid --payload '{"url":"http://127.0.0.1:1/x"}' 2>/dev/null)
IDLE_TIMEOUT=0.3 QUEUES=clid wq drain >/dev/null 2>&1
expect_eq "dead list: the four dead jobs (JSON)" 4 "$(wq dead list --queue clid | jq length)"
expect_eq "dead list --type http.request" "$h" "$(wq dead list --queue clid --type http.request | jq -r '.[].id')"
out=$(wq dead list --queue clid --table)
check "dead list --table: id, type, attempts, age, error ($(echo "$out" | head -1))" \
	sh -c "echo '$out' | head -1 | grep -Eq '^ID +TYPE +ATTEMPTS +AGE +ERROR$'"
check "a row with its error and age" sh -c "echo '$out' | grep -Eq ' fail +1/3 +[0-9]+s +nope [123]$'"
expect_eq "dead retry ID --all is refused (2)" 2 "$(code wq dead retry --queue clid --all "$h")"
expect_eq "dead retry --type without --all is refused (2)" 2 "$(code wq dead retry --queue clid --type fail)"
expect_eq "dead retry with neither is refused (2)" 2 "$(code wq dead retry --queue clid)"
out=$(wq dead retry --all --queue clid --type fail 2>/dev/null)
expect_eq "dead retry --all --type fail" "retried 3 dead jobs of 'clid'" "$out"
expect_eq "no progress bar when not on a terminal" 1 "$(echo "$out" | wc -l)"
expect_eq "the three are queued again" 3 "$(count_status clid queued)"
expect_eq "the other type is still dead" "$h" "$(wq dead list --queue clid | jq -r '.[].id')"
expect_eq "dead retry --all takes the rest" "retried 1 dead job of 'clid'" "$(wq dead retry --all --queue clid 2>/dev/null)"
expect_eq "dead retry --all of an empty dead letter" "retried 0 dead jobs of 'clid'" "$(wq dead retry --all --queue clid 2>/dev/null)"

# ---- status --watch: the exit code tells the outcome ----------------------
# watch ID FILE: `status ID --watch` in the background (not a terminal),
# its output in FILE, its exit code in FILE.rc once it ends
watch() { (timeout 30 env REDIS_URL=$REDIS_URL "$BIN/wakeq" status "$1" --watch >"$2" 2>&1; echo $? >"$2.rc") & }
a=$(wq enqueue noop --queue cliwatch 2>/dev/null)
watch "$a" "$T/w1"
check "the watch subscribes to the queue's events" \
	wait_until 5 sh -c "[ \"\$(redis-cli -p $REDIS_PORT pubsub numsub 'wakeq:{cliwatch}:events' | tail -1)\" = 1 ]"
"$BIN/tests/tools/qdrive" "$REDIS_URL" cliwatch run 3 100 >/dev/null
check "a watched job that ends done: exit 0" wait_until 5 test -s "$T/w1.rc"
expect_eq "exit 0 for done" 0 "$(cat "$T/w1.rc")"
expect_eq "and, not on a terminal, the final document" "done {\"ok\":true}" \
	"$(jq -c -r '"\(.status) \(.result)"' "$T/w1")"
b=$(wq enqueue fail --queue cliwatch --payload '{"message":"watched"}' 2>/dev/null)
watch "$b" "$T/w2"
wait_until 5 sh -c "[ \"\$(redis-cli -p $REDIS_PORT pubsub numsub 'wakeq:{cliwatch}:events' | tail -1)\" = 1 ]"
IDLE_TIMEOUT=0.3 QUEUES=cliwatch wq drain >/dev/null 2>&1
wait_until 5 test -s "$T/w2.rc"
expect_eq "exit 5 for failed" 5 "$(cat "$T/w2.rc")"
expect_eq "with its error" "failed watched" "$(jq -r '"\(.status) \(.error)"' "$T/w2")"
c=$(wq enqueue noop --queue cliwatch --delay 600 2>/dev/null)
watch "$c" "$T/w3"
wait_until 5 sh -c "[ \"\$(redis-cli -p $REDIS_PORT pubsub numsub 'wakeq:{cliwatch}:events' | tail -1)\" = 1 ]"
t0=$(date +%s%N)
wq cancel --queue cliwatch "$c" >/dev/null
wait_until 5 test -s "$T/w3.rc"
expect_eq "exit 6 for cancelled" 6 "$(cat "$T/w3.rc")"
check "told at once by the event, not a poll ($((($(date +%s%N) - t0) / 1000000)) ms)" \
	test $((($(date +%s%N) - t0) / 1000000)) -lt 600
expect_eq "watching a job already done exits 0 at once" 0 "$(timeout 5 env REDIS_URL=$REDIS_URL "$BIN/wakeq" status "$a" --watch >/dev/null 2>&1; echo $?)"
expect_eq "watching an unknown job exits 3" 3 "$(code wq status 01a20466-181e-7014-b516-77142d772f9d --watch)"

# ---- stats --watch -----------------------------------------------------------
timeout 1.3 env REDIS_URL=$REDIS_URL "$BIN/wakeq" stats --watch --interval 0.2 --queue clij >"$T/sw" 2>&1
n=$(grep -c '^every 0.2s: ' "$T/sw")
check "stats --watch --interval 0.2 redraws ($n rounds in 1.3 s)" test "$n" -ge 4 -a "$n" -le 8
expect_eq "each round with the queue's row" "$n" "$(grep -c '^clij ' "$T/sw")"
timeout 0.9 env REDIS_URL=$REDIS_URL "$BIN/wakeq" stats --watch --json --interval 0.2 --queue clij >"$T/swj" 2>&1
check "stats --watch --json: one JSON document a line" sh -c "[ \$(jq -c '.clij.queued' '$T/swj' | sort -u) = 3 ]"
expect_eq "--interval without --watch is refused (2)" 2 "$(code wq stats --interval 1)"

# ---- completion scripts -------------------------------------------------------
wq completion bash >"$T/c.bash"
check "the bash completion is valid bash" bash -n "$T/c.bash"
comp() { # comp WORD...: what the bash completion offers for the last word
	bash -c ". '$T/c.bash'; COMP_WORDS=(\"\$@\"); COMP_CWORD=\$((\$# - 1)); _wakeq; echo \"\${COMPREPLY[*]}\"" _ "$@"
}
expect_eq "bash completes the commands" "dead drain" "$(comp wakeq d)"
expect_eq "bash completes the dead commands" "retry" "$(comp wakeq dead re)"
expect_eq "bash completes a command's options" "--state" "$(comp wakeq jobs --st)"
expect_eq "bash completes no option of another command" "" "$(comp wakeq enqueue --st)"
expect_eq "bash completes option values" "failed" "$(comp wakeq jobs --state fa)"
expect_eq "bash completes job types" "media.probe media.thumbnail media.transcode" "$(comp wakeq enqueue media.)"
expect_eq "bash completes batch create (batch is a command too)" "create" "$(comp wakeq batch cr)"
expect_eq "and batch ID's options" "--queue" "$(comp wakeq batch x --q)"
expect_eq "and batch create's" "--queue" "$(comp wakeq batch create f.json --q)"
expect_eq "bash completes schedules get" "get" "$(comp wakeq schedules g)"
if command -v zsh >/dev/null; then
	wq completion zsh >"$T/c.zsh"
	check "the zsh completion is valid zsh" zsh -n "$T/c.zsh"
else
	not_ok "zsh is needed to check the zsh completion (container/deps.sh install test)"
fi
expect_eq "completion fish is a usage error (2)" 2 "$(code wq completion fish)"

# ---- enqueue straight into Redis wakes a worker when none is live ------------
STUB_BIN=$BIN/tests/tools/wakestub
start_fake STUB "$STUB_BIN" --hold 5
wakes() { curl -s "$STUB/count" | jq -r .wakes; }
t0=$(date +%s%N)
id=$(WAKE_URL=$STUB/wake WAKE_TOKEN=wtok wq enqueue noop --queue cliwk 2>"$T/wk.err")
ms=$((($(date +%s%N) - t0) / 1000000))
check "enqueue printed the id" test -n "$id"
expect_eq "no live worker: one wake of WAKE_URL" 1 "$(wakes)"
expect_eq "with WAKE_TOKEN" "Bearer wtok" "$(curl -s "$STUB/count" | jq -r .auth)"
check "and it says so ($(cat "$T/wk.err"))" contains "$(cat "$T/wk.err")" "no live worker on 'cliwk': woke '$STUB/wake'"
check "a held wake does not hold the CLI ($ms ms)" test "$ms" -lt 3000
rcli zadd 'wakeq:{cliwk}:workers' $(($(date +%s%3N) + 600000)) w1 >/dev/null
WAKE_URL=$STUB/wake wq enqueue noop --queue cliwk >/dev/null 2>"$T/wk.err"
expect_eq "a live worker: no wake" 1 "$(wakes)"
check "and it says so ($(cat "$T/wk.err"))" contains "$(cat "$T/wk.err")" "a worker is live on 'cliwk': no wake needed"
WAKE_URL= wq enqueue noop --queue cliwk2 >/dev/null 2>"$T/wk.err"
check "without WAKE_URL it says the job waits ($(cat "$T/wk.err"))" contains "$(cat "$T/wk.err")" "WAKE_URL is not set"
WAKE_URL=$STUB/wake wq enqueue noop --queue cliwk2 --delay 600 >/dev/null 2>"$T/wk.err"
expect_eq "a scheduled job: no wake now" 1 "$(wakes)"
check "and it says so" contains "$(cat "$T/wk.err")" "scheduled for"
d=$(wq enqueue fail --queue cliwk3 2>/dev/null)
IDLE_TIMEOUT=0.2 QUEUES=cliwk3 wq drain >/dev/null 2>&1
WAKE_URL=$STUB/wake wq dead retry --queue cliwk3 "$d" >/dev/null 2>&1
expect_eq "dead retry wakes a worker too" 2 "$(wakes)"
WAKE_URL=http://127.0.0.1:1/wake wq enqueue noop --queue cliwk4 >/dev/null 2>"$T/wk.err"
expect_eq "a wake that fails does not fail the enqueue" 1 "$(wq stats --json --queue cliwk4 | jq '.cliwk4.queued')"
check "but says so ($(cat "$T/wk.err"))" contains "$(cat "$T/wk.err")" "cannot wake"

# ---- flows and batches from a file, straight into Redis ------------------------
printf '%s\n' '{"parent": {"type": "noop"},' \
	' "children": [{"type": "sleep", "payload": {"ms": 5}},' \
	'              {"type": "noop", "children": [{"type": "sleep", "payload": {"ms": 1}}]}]}' \
	>"$T/flow.json"
w0=$(wakes)
out=$(WAKE_URL=$STUB/wake wq flow "$T/flow.json" --queue clflow 2>"$T/fl.err")
expect_eq "wakeq flow FILE prints the ids: the parent waits, its tree as given" \
	"waiting queued waiting queued clflow" \
	"$(jq -r '"\(.status) \(.children[0].status) \(.children[1].status) \(.children[1].children[0].status) \(.queue)"' <<<"$out")"
fp=$(jq -r .id <<<"$out")
expect_eq "the parent depends on its two children" \
	"$(jq -c '[.children[].id]' <<<"$out")" "$(wq status "$fp" | jq -c .depends_on)"
expect_eq "children were due: one wake of WAKE_URL" $((w0 + 1)) "$(wakes)"
check "and it says so ($(cat "$T/fl.err"))" contains "$(cat "$T/fl.err")" "no live worker on 'clflow'"
out=$(echo '{"jobs":[{"type":"noop"},{"type":"fail","max_attempts":1}]}' |
	wq batch create - --queue clflow 2>/dev/null)
bid=$(jq -r .id <<<"$out")
expect_eq "wakeq batch create - (stdin) prints the batch and its 2 jobs, as the API answers" \
	"36 clflow 2 /v1/batches/$bid" \
	"$(jq -r '"\(.id | length) \(.queue) \(.jobs | length) \(.status_url)"' <<<"$out")"
expect_eq "wakeq batch ID shows it running" "running 2 2" \
	"$(wq batch "$bid" | jq -r '"\(.status) \(.total) \(.pending)"')"
IDLE_TIMEOUT=0.3 QUEUES=clflow wq drain >/dev/null 2>&1
expect_eq "a drain ran the flow: the parent last, done" done "$(job_field "$fp" status)"
expect_eq "and the batch: finished, one done, one failed" "finished 1 1" \
	"$(wq batch "$bid" | jq -r '"\(.status) \(.done) \(.failed)"')"
fp=$(WAKE_URL= QUEUES=clflow2 wq flow "$T/flow.json" 2>/dev/null | jq -r .id)
expect_eq "without --queue the first of QUEUES" clflow2 "$(job_field "$fp" queue)"
# bad documents: exit 2, saying what and where, and nothing enqueued
bad_doc() { # bad_doc WHAT CMD DOC MESSAGE
	local msg rc
	msg=$(printf '%s' "$3" | wq $2 - --queue clbad 2>&1)
	rc=$?
	expect_eq "$2 refuses $1: exit 2" 2 "$rc"
	check "saying so ($msg)" contains "$msg" "$4"
}
bad_doc "bad JSON" flow '{"parent":' "bad JSON in '-' (line 1"
bad_doc "a JSON array" flow '[{"type":"noop"}]' "bad document in '-': expected a JSON object"
bad_doc "no children" flow '{"parent":{"type":"noop"}}' \
	"field 'children': expected an array of 1 or more jobs"
bad_doc "an unknown type, named with its place" flow \
	'{"parent":{"type":"noop"},"children":[{"type":"noop","children":[{"type":"nope"}]}]}' \
	"children[0].children[0]: field 'type': unknown job type 'nope'"
bad_doc "a member's own depends_on" "batch create" '{"jobs":[{"type":"noop","depends_on":["x"]}]}' \
	"jobs[0]: field 'depends_on' is not allowed here"
bad_doc "an unknown field" "batch create" '{"jobs":[{"type":"noop"}],"kids":[]}' "unknown field 'kids'"
bad_doc "an empty batch" "batch create" '{"jobs":[]}' "field 'jobs': expected an array of 1 to 999 jobs"
bad_doc "a queue other than --queue's" "batch create" '{"queue":"x","jobs":[{"type":"noop"}]}' \
	"--queue 'clbad' is not the document's queue 'x'"
expect_eq "a file that is not there: exit 2" 2 "$(code wq flow "$T/nope.json")"
expect_eq "batch create without FILE: exit 2" 2 "$(code wq batch create)"
expect_eq "nothing refused was enqueued" 0 "$(rcli exists 'wakeq:{clbad}:pending' 'wakeq:{x}:pending')"

# ---- schedules get ---------------------------------------------------------------
wq schedules add nightly '0 3 * * *' noop --queue clsch --tz Europe/Paris --paused >/dev/null 2>&1
expect_eq "wakeq schedules get NAME: the schedule as JSON" "nightly clsch Europe/Paris true noop 0" \
	"$(wq schedules get nightly --queue clsch |
		jq -r '"\(.name) \(.queue) \(.timezone) \(.paused) \(.job.type) \(.fired)"')"
expect_eq "the same as schedules list shows" "$(wq schedules list --queue clsch | jq -c '.[0]')" \
	"$(wq schedules get nightly --queue clsch | jq -c .)"
expect_eq "an unknown schedule: not found (3)" 3 "$(code wq schedules get nope --queue clsch)"
check "saying so" contains "$(wq schedules get nope --queue clsch 2>&1)" "no schedule 'nope' in queue 'clsch'"
expect_eq "without NAME: usage (2)" 2 "$(code wq schedules get)"
expect_eq "without --queue: found in whichever queue has it" "nightly clsch" \
	"$(wq schedules get nightly | jq -r '"\(.name) \(.queue)"')"
expect_eq "... and a name no queue has: not found in any queue (3)" \
	"wakeq: no schedule 'nope' in any queue|3" "$(wq schedules get nope 2>&1)|$(code wq schedules get nope)"

# ---- enqueue through the API (WAKEQ_API_URL) ----------------------------------
AP=$($FREEPORT)
env PORT="$AP" REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" API_TOKEN=tok1,tok2 \
	QUEUES=default,clapi RECONCILE_INTERVAL=0 WAKE_URL="$STUB/wake" \
	"$BIN/wakeq-api" >"$T/api2.log" 2>&1 &
ap=$!
on_exit "kill_wait $ap"
wait_until "$START_S" curl -fs "http://127.0.0.1:$AP/healthz" >/dev/null
w0=$(wakes)
id=$(WAKEQ_API_URL=http://127.0.0.1:$AP/ WAKEQ_API_TOKEN=tok2 wq enqueue sleep --queue clapi \
	--payload '{"ms":5}' --priority 3 --max-attempts 7 2>"$T/api.err")
expect_eq "enqueue through the API prints the id" 36 "${#id}"
check "and says it went through the API ($(cat "$T/api.err"))" contains "$(cat "$T/api.err")" \
	"enqueued through the API at 'http://127.0.0.1:$AP'"
expect_eq "the job is in Redis with the options given" "clapi sleep 3 7 5" \
	"$(wq status "$id" | jq -r '"\(.queue) \(.type) \(.priority) \(.max_attempts) \(.payload.ms)"')"
expect_eq "and has its Postgres row (the API wrote it)" queued \
	"$(psql "$DATABASE_URL" -tAc "SELECT status FROM jobs WHERE id = '$id'")"
check "and the API woke the stub worker" wait_until 5 sh -c "[ \$(curl -s $STUB/count | jq .wakes) -gt $w0 ]"
id=$(WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq enqueue noop --count 3 2>/dev/null)
expect_eq "API_TOKEN serves when WAKEQ_API_TOKEN is not set; --count 3 posts 3" 3 "$(echo "$id" | sort -u | wc -l)"
expect_eq "without --queue the API's default queue" default "$(wq status "$(echo "$id" | head -1)" | jq -r .queue)"
k1=$(WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq enqueue noop --idempotency-key k-1 2>/dev/null)
k2=$(WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq enqueue noop --idempotency-key k-1 2>"$T/api.err")
expect_eq "an idempotent repeat through the API gives the same id" "$k1" "$k2"
check "and says so" contains "$(cat "$T/api.err")" "an existing job has this idempotency key"
msg=$(WAKEQ_API_URL=http://127.0.0.1:$AP WAKEQ_API_TOKEN=wrong wq enqueue noop 2>&1)
expect_eq "a wrong token: exit 1" 1 "$(WAKEQ_API_URL=http://127.0.0.1:$AP WAKEQ_API_TOKEN=wrong code wq enqueue noop)"
check "naming the API's answer ($msg)" contains "$msg" "answered HTTP 401 unauthorized: bad bearer token"
msg=$(WAKEQ_API_URL=http://127.0.0.1:$AP WAKEQ_API_TOKEN=tok1 wq enqueue noop --queue notserved 2>&1)
check "a queue the API does not serve: its 400 ($msg)" contains "$msg" "HTTP 400 invalid_field"
expect_eq "exit 2" 2 "$(WAKEQ_API_URL=http://127.0.0.1:$AP WAKEQ_API_TOKEN=tok1 code wq enqueue noop --queue notserved)"
expect_eq "a bad option is refused before any request (2)" 2 \
	"$(WAKEQ_API_URL=http://127.0.0.1:1 code wq enqueue noop --priority 10)"
msg=$(WAKEQ_API_URL=http://127.0.0.1:1 wq enqueue noop 2>&1)
expect_eq "an API that cannot be reached: exit 1" 1 "$(WAKEQ_API_URL=http://127.0.0.1:1 code wq enqueue noop)"
check "saying so ($msg)" contains "$msg" "127.0.0.1:1"

# ---- flows and batches through the API -------------------------------------------
out=$(WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq flow "$T/flow.json" --queue clapi 2>"$T/api.err")
expect_eq "wakeq flow through the API: the API's answer" "waiting clapi 2" \
	"$(jq -r '"\(.status) \(.queue) \(.children | length)"' <<<"$out")"
check "saying so ($(cat "$T/api.err"))" contains "$(cat "$T/api.err")" \
	"created through the API at 'http://127.0.0.1:$AP'"
ids=$(jq -r '[.. | .id? // empty | "'"'"'\(.)'"'"'"] | join(",")' <<<"$out")
expect_eq "each of its 4 jobs has its Postgres row (the API wrote them)" 4 \
	"$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM jobs WHERE id IN ($ids)")"
out=$(echo '{"jobs":[{"type":"noop"}]}' |
	WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq batch create - 2>/dev/null)
bid=$(jq -r .id <<<"$out")
expect_eq "wakeq batch create through the API: on the API's default queue" "default /v1/batches/$bid" \
	"$(jq -r '"\(.queue) \(.status_url)"' <<<"$out")"
msg=$(echo '{"jobs":[{"type":"nope"}]}' |
	WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 wq batch create - 2>&1)
check "a bad batch: the API's 400 ($msg)" contains "$msg" \
	"HTTP 400 unknown_type: jobs[0]: field 'type': unknown job type 'nope'"
expect_eq "exit 2" 2 "$(echo '{"jobs":[{"type":"nope"}]}' |
	WAKEQ_API_URL=http://127.0.0.1:$AP API_TOKEN=tok1 code wq batch create -)"
expect_eq "bad JSON is refused before any request (2)" 2 \
	"$(echo '{' | WAKEQ_API_URL=http://127.0.0.1:1 code wq flow -)"
exit 0
