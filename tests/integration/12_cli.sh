#!/usr/bin/env bash
# The operator CLI against a real redis-server (and Postgres for reconcile):
# commands, JSON output, exit codes and error messages.
set -u
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/wakeq.sh"
t_tmpdir
start_redis

code() { "$@" >/dev/null 2>&1; echo $?; }

check "--help prints the commands" sh -c "'$BIN/wakeq' --help | grep -q 'dead list'"
expect_eq "no command is a usage error (2)" 2 "$(code "$BIN/wakeq")"
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
expect_eq "dead list shows the failed job" "$d" "$(wq dead list --queue cli)"
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
wait_until 10 curl -fs "http://127.0.0.1:$APORT/healthz" >/dev/null
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
exit 0
