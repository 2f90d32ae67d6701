#!/usr/bin/env bash
# 23_deps - job dependencies through the real API (with Postgres) and the
# real worker: a chain A -> B -> C runs in order (start and end times); a
# job waiting for its dependencies keeps no worker awake; a failed
# dependency fails, cancels or releases its dependents as their policy
# says, down the chain; a dependency already done counts as done; unknown
# and malformed depends_on are refused with exact errors and leave
# nothing behind; dependents survive a SIGKILL of the worker running
# their dependency.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
start_postgres

TOKEN=tok
_start_api DATABASE_URL="$DATABASE_URL" QUEUES=default,other
pg() { psql "$DATABASE_URL" -Atq -c "$1"; }
post() { curl -s -w '\n%{http_code}' -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' -d "$1" "$API/v1/jobs"; }
id_of() { head -1 <<<"$1" | jq -r .id; }
get() { curl -fs -H "Authorization: Bearer $TOKEN" "$API/v1/jobs/$1"; }
# times in µs from the job's RFC 3339 fields (jq's mktime drops fractions)
tus() {
	wq status "$1" | jq -r ".$2" |
		python3 -c 'import sys,datetime;t=sys.stdin.read().strip();d=datetime.datetime.strptime(t,"%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc);print(int(d.timestamp()*1e6))'
}

# ---- a chain A -> B -> C -------------------------------------------------------
r=$(post '{"type":"sleep","payload":{"ms":300}}')
a=$(id_of "$r")
r=$(post "{\"type\":\"sleep\",\"payload\":{\"ms\":200},\"depends_on\":[\"$a\"]}")
expect_eq "a job with an unfinished dependency is accepted as waiting" "202 waiting" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .status)"
b=$(id_of "$r")
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$b\"]}")
c=$(id_of "$r")
expect_eq "the job shows what it waits for" "waiting [\"$a\"] fail" \
	"$(get "$b" | jq -c -r '"\(.status) \(.depends_on) \(.on_dependency_failure)"')"
expect_eq "Postgres records it as waiting" waiting "$(pg "SELECT status FROM jobs WHERE id = '$b'")"
expect_eq "stats count the waiting jobs" 2 "$(count_status default waiting)"
expect_eq "queued counts only the job that can run" 1 "$(count_status default queued)"
check "wakeq jobs --state waiting lists them in order" sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq jobs --state waiting --json | jq -r '.[].id' | tr '\n' ' ')\" = '$b $c ' ]"

start_worker w1 IDLE_TIMEOUT=0.5 CONCURRENCY=4 LEASE=2 EXIT_ON_IDLE=false
out=$(curl -fs -XPOST "$w1_URL/wake")
expect_eq "one drain runs the whole chain" 3 "$(jq -r .drain.jobs <<<"$out")"
expect_eq "all three done" "done done done" \
	"$(job_field "$a" status) $(job_field "$b" status) $(job_field "$c" status)"
check "B started after A finished" test "$(tus "$b" started_at)" -ge "$(tus "$a" finished_at)"
check "C started after B finished" test "$(tus "$c" started_at)" -ge "$(tus "$b" finished_at)"
expect_eq "B's document lists A with its result" "$a done 300" \
	"$(get "$b" | jq -r '.dependencies[0] | "\(.id) \(.status) \(.result.slept_ms)"')"

# ---- waiting work keeps no worker awake ---------------------------------------
r=$(post '{"type":"noop","delay_s":3600}')
s=$(id_of "$r")
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$s\"]}")
w=$(id_of "$r")
start_worker w2 IDLE_TIMEOUT=5 EXIT_ON_IDLE=false
t0=$(date +%s%3N)
out=$(curl -fs -XPOST "$w2_URL/wake")
el=$(($(date +%s%3N) - t0))
expect_eq "a wake with only waiting work runs nothing" 0 "$(jq -r .drain.jobs <<<"$out")"
check "and ends without waiting out IDLE_TIMEOUT (${el} ms < 2000)" test "$el" -lt 2000
expect_eq "the dependent still waits" waiting "$(job_field "$w" status)"
code=$(curl -s -o /dev/null -w '%{http_code}' -XDELETE -H "Authorization: Bearer $TOKEN" "$API/v1/jobs/$w")
expect_eq "a waiting job can be cancelled" "200 cancelled" "$code $(job_field "$w" status)"
expect_eq "and leaves the waiting set" 0 "$(count_status default waiting)"

# ---- a dependency already done counts as done ------------------------------------
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$a\",\"$c\"]}")
expect_eq "dependencies already done: queued at once" "202 queued" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .status)"
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "and it runs" done "$(job_field "$(id_of "$r")" status)"

# ---- a failed dependency, per policy, recursively -------------------------------
r=$(post '{"type":"fail","payload":{"message":"boom"},"max_attempts":1}')
p=$(id_of "$r")
d1=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$p\"]}")")
d2=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$p\"],\"on_dependency_failure\":\"cancel\"}")")
d3=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$p\"],\"on_dependency_failure\":\"ignore\"}")")
e1=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$d1\"]}")")
e2=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$d2\"],\"on_dependency_failure\":\"cancel\"}")")
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "the parent failed" failed "$(job_field "$p" status)"
expect_eq "policy fail (the default): its dependent fails, saying why" \
	"failed dependency '$p' failed" "$(wq status "$d1" | jq -r '"\(.status) \(.error)"')"
expect_eq "policy cancel: cancelled" "cancelled dependency '$p' failed" \
	"$(wq status "$d2" | jq -r '"\(.status) \(.error)"')"
expect_eq "policy ignore: it runs" done "$(job_field "$d3" status)"
expect_eq "down the chain: the dependent of the failed one fails" \
	"failed dependency '$d1' failed" "$(wq status "$e1" | jq -r '"\(.status) \(.error)"')"
expect_eq "and of the cancelled one is cancelled" \
	"cancelled dependency '$d2' cancelled" "$(wq status "$e2" | jq -r '"\(.status) \(.error)"')"
check "Postgres gets the final states" wait_until 10 sh -c \
	"[ \"\$(psql '$DATABASE_URL' -Atq -c \"SELECT status FROM jobs WHERE id IN ('$d1','$e1') ORDER BY status\" | sort -u)\" = failed ]"
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$p\"]}")
expect_eq "a new job on a failed dependency fails at once (policy fail)" "202 failed" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .status)"
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$p\"],\"on_dependency_failure\":\"ignore\"}")
expect_eq "or runs with ignore" "202 queued" "$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .status)"

# ---- refused: unknown and malformed ---------------------------------------------
rows=$(pg "SELECT count(*) FROM jobs")
ghost=01890a5d-ac96-774b-bcce-b302099a8057
r=$(post "{\"type\":\"noop\",\"depends_on\":[\"$a\",\"$ghost\"]}")
expect_eq "an unknown dependency is refused" \
	"400 unknown_dependency field 'depends_on': no job '$ghost' in queue 'default' (a job depends on jobs of its own queue only)" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r '"\(.error.code) \(.error.message)"')"
r=$(post "{\"type\":\"noop\",\"queue\":\"other\",\"depends_on\":[\"$a\"]}")
expect_eq "so is a dependency in another queue" \
	"400 field 'depends_on': no job '$a' in queue 'other' (a job depends on jobs of its own queue only)" \
	"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r .error.message)"
bad() {
	r=$(post "$1")
	expect_eq "refused: $1" "400 invalid_field $2" \
		"$(tail -1 <<<"$r") $(head -1 <<<"$r" | jq -r '"\(.error.code) \(.error.message)"')"
}
bad '{"type":"noop","depends_on":"x"}' "field 'depends_on': expected an array of job ids"
bad '{"type":"noop","depends_on":[]}' "field 'depends_on': expected 1 to 1000 job ids, not 0"
bad '{"type":"noop","depends_on":["nope"]}' "field 'depends_on': entry 0: expected a job id (a UUID)"
bad '{"type":"noop","depends_on":[7]}' "field 'depends_on': entry 0: expected a job id (a UUID)"
bad "{\"type\":\"noop\",\"depends_on\":[\"$a\",\"${a^^}\"]}" "field 'depends_on': entry 1: job '${a^^}' is listed twice"
bad "{\"type\":\"noop\",\"depends_on\":[\"$a\"],\"on_dependency_failure\":\"maybe\"}" \
	"field 'on_dependency_failure': expected fail, cancel or ignore"
expect_eq "nothing refused left a row" "$rows" "$(pg "SELECT count(*) FROM jobs")"
expect_eq "nor a job in Redis" 0 "$(count_status other queued)"

# ---- the CLI -----------------------------------------------------------------------
x=$(wq enqueue noop --depends-on "$a,$s" --on-dependency-failure cancel 2>"$T/cli.err")
expect_eq "wakeq enqueue --depends-on: the job waits" "waiting cancel" \
	"$(wq status "$x" | jq -r '"\(.status) \(.on_dependency_failure)"')"
check "and says no wake is needed" grep -q "waiting for its dependencies" "$T/cli.err"
check "wakeq status lists its dependencies" sh -c \
	"[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $x | jq -r '[.dependencies[].status] | join(\",\")')\" = done,scheduled ]"
wq enqueue noop --depends-on "$ghost" >/dev/null 2>"$T/cli2.err"
expect_eq "an unknown id: exit 3 (not found), said on stderr" \
	"3 wakeq: no job '$ghost' in queue 'default' (--depends-on names jobs of the job's own queue)" \
	"$? $(cat "$T/cli2.err")"
wq enqueue noop --depends-on "$a,nope" >/dev/null 2>"$T/cli3.err"
check "a malformed one: the API's words" grep -q "field 'depends_on': entry 1: expected a job id (a UUID)" "$T/cli3.err"

# ---- SIGKILL of the worker running a dependency ------------------------------------
kill_wait "$w2_PID"
r=$(post '{"type":"sleep","payload":{"ms":1500},"max_attempts":3}')
k=$(id_of "$r")
kd=$(id_of "$(post "{\"type\":\"noop\",\"depends_on\":[\"$k\"]}")")
start_worker w3 IDLE_TIMEOUT=0.3 LEASE=1
curl -fs -XPOST "$w3_URL/wake?wait=0" >/dev/null
wait_until 5 sh -c "[ \"\$(REDIS_URL=$REDIS_URL $BIN/wakeq status $k | jq -r .status)\" = active ]"
sleep 0.3 # the heartbeat reports it running
kill -KILL "$w3_PID"
expect_eq "the dependent waits through the crash" waiting "$(job_field "$kd" status)"
sleep 1.2 # the lease expires
start_worker w4 IDLE_TIMEOUT=0.5 LEASE=2
curl -fs -XPOST "$w4_URL/wake" >/dev/null
expect_eq "the dependency ran again and is done" "done 2" \
	"$(wq status "$k" | jq -r '"\(.status) \(.attempts)"')"
expect_eq "then its dependent ran" done "$(job_field "$kd" status)"
check "after it" test "$(tus "$kd" started_at)" -ge "$(tus "$k" finished_at)"
exit 0
