#!/usr/bin/env bash
# 24_upgrade - a queue written by the previous engine drains correctly
# after an upgrade (docs/QUEUE.md "Engine costs", migration note). The
# previous version's scripts (_lib.lua + enqueue.lua / take.lua at PREV,
# read from git) are run through EVAL as its processes would: they
# enqueue jobs, lease and settle some (done records with a PEXPIRE each)
# and leave others leased by a worker that then dies. The current worker
# then drains the queue: every job done once it is reclaimed, the old
# records readable, and the new bulk retention trims the old records too.
# Then the same for records written before the packed spec (field s,
# internal/job/job.h): jobs with a unique key, a group, a dependency and a
# trace, queued by the enqueue script of PREV2, drained by this worker.
set -u
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/wakeq.sh"
PREV=${PREV:-bd96966} # the last commit before "Engine costs"
t_tmpdir
PREV2=${PREV2:-d06e248} # the last commit before the packed spec
old() { # old SCRIPT [REV]: the previous version's script as Redis ran it
	{ git -C "$TOP" show "${2:-$PREV}:internal/queue/lua/_lib.lua" &&
		git -C "$TOP" show "${2:-$PREV}:internal/queue/lua/$1.lua"; } >"$T/$1${2:-}.lua"
}
if ! old enqueue 2>/dev/null || ! old take 2>/dev/null || ! old enqueue "$PREV2" 2>/dev/null ||
	! old take "$PREV2" 2>/dev/null; then
	ok "# SKIP no git history with $PREV (the previous scripts)"
	exit 0
fi
start_redis
Q='wakeq:{up}:'
N=20

# ---- the previous version writes the queue ------------------------------------
args=()
for i in $(seq 1 $N); do
	id=$(cat /proc/sys/kernel/random/uuid)
	ids+=("$id")
	# id priority run_at delay idem idem_ttl nfields unique group, fields
	args+=("$id" 0 0 0 '' 0 4 '' '' type noop payload '{}' max_attempts 3 timeout 30)
done
rcli eval "$(cat "$T/enqueue.lua")" 1 "$Q" "$N" "${args[@]}" >"$T/enq.out"
expect_eq "the previous enqueue script queued $N jobs" "$N" "$(rcli zcard "${Q}pending")"

# take 5 and settle them done (a record each with a PEXPIRE), then lease
# 3 more to a worker that dies (lease 300 ms, never settled)
take() { # take WANT LEASE_MS [settle fields...]: the reply, a line a field
	local want=$1 lease=$2 nset=$(((${#} - 2) / 7))
	shift 2
	rcli eval "$(cat "$T/take.lua")" 1 "$Q" old-w "$lease" "$want" "$nset" 600 10000 10000 "$want" "$@"
}
mapfile -t r < <(take 5 60000)
expect_eq "the previous take script leased 5" 5 "${r[3]}"
settle=()
for k in 0 1 2 3 4; do
	b=$((6 + k * 11))
	settle+=("${r[$b]}" "${r[$((b + 1))]}" d '{"old":true}' '' 0 100)
	done_ids+=("${r[$b]}")
done
mapfile -t r < <(take 3 300 "${settle[@]}")
expect_eq "… settled them done and leased 3 more" "fffff 3" "${r[2]} ${r[3]}"
for k in 0 1 2; do leased_ids+=("${r[$((6 + k * 11))]}"); done
ttl=$(rcli ttl "${Q}job:${done_ids[0]}")
check "an old done record has its own TTL ($ttl s)" test "$ttl" -gt 0 -a "$ttl" -le 600
sleep 0.4 # the old worker's leases run out

# ---- the current worker drains it ---------------------------------------------
start_worker w QUEUES=up IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false
sum=$(curl -fs -XPOST "$w_URL/wake")
expect_eq "the new worker ran the 12 queued and the 3 reclaimed jobs" 15 "$(jq -r .drain.done <<<"$sum")"
expect_eq "nothing pending, active or dead" "0 0 0" \
	"$(rcli zcard "${Q}pending") $(rcli zcard "${Q}active") $(rcli zcard "${Q}dead")"
expect_eq "all-time done total: $N" "$N" "$(count_status up done_total)"
expect_eq "an old done record reads as before" "done true" \
	"$(job_field "${done_ids[0]}" status) $(job_field "${done_ids[0]}" result.old)"
att=$(job_field "${leased_ids[0]}" attempts)
expect_eq "a job leased by the dead old worker ran again, done" done "$(job_field "${leased_ids[0]}" status)"
expect_eq "… its first run (started, lease lost) counted: 2 attempts" 2 "$att"
expect_eq "a new done record has no TTL of its own" -1 "$(rcli ttl "${Q}job:${leased_ids[0]}")"

# ---- retention covers old and new records alike -------------------------------
wq settings up result_ttl_s=1 >/dev/null
sleep 1.1
curl -fs -XPOST "$w_URL/wake" >/dev/null
expect_eq "after result_ttl_s a take trimmed old and new records" "0 0 0" \
	"$(rcli zcard "${Q}done") $(rcli exists "${Q}job:${done_ids[1]}") $(rcli exists "${Q}job:${leased_ids[1]}")"
expect_eq "… and the all-time total stays $N" "$N" "$(count_status up done_total)"

# ---- records without the packed spec --------------------------------------------
Q2='wakeq:{up2}:'
for k in 1 2 3 4 5; do j[$k]=$(cat /proc/sys/kernel/random/uuid); done
f=(type noop payload '{}' max_attempts 3 timeout 30)
# id priority run_at delay idem idem_ttl nfields unique group deps depfail,
# fields, then the deadline (0: none)
rcli eval "$(cat "$T/enqueue$PREV2.lua")" 1 "$Q2" 5 \
	"${j[1]}" 0 0 0 '' 0 5 u1 '' '' '' "${f[@]}" unique u1 \
	"${j[2]}" 0 0 0 '' 0 5 '' g1 '' '' "${f[@]}" group g1 \
	"${j[3]}" 0 0 0 '' 0 5 '' '' '' '' "${f[@]}" trace 0af7651916cd43dd8448eb211c80319c \
	"${j[4]}" 0 0 0 '' 0 6 '' '' "[\"${j[1]}\"]" fail "${f[@]}" deps "[\"${j[1]}\"]" depfail fail \
	"${j[5]}" 0 0 0 '' 0 4 '' '' '' '' "${f[@]}" 0 >"$T/enq2.out"
expect_eq "the enqueue script of $PREV2 queued 5 jobs (one in its group, one waiting)" "3 1 1" \
	"$(rcli zcard "${Q2}pending") $(rcli zcard "${Q2}gpend:g1") $(rcli zcard "${Q2}waiting")"
expect_eq "… records without the packed spec" 0 "$(rcli hexists "${Q2}job:${j[1]}" s)"
# and one written by hand, its numbers in forms no writer of wakeq uses
j[6]=$(cat /proc/sys/kernel/random/uuid)
rcli hset "${Q2}job:${j[6]}" status queued priority 0 attempts 0 created 1 run_at 1 \
	type noop payload '{}' max_attempts ' 2.0' timeout 1e1 >/dev/null
rcli zadd "${Q2}pending" 0 "${j[6]}" >/dev/null
start_worker w2 QUEUES=up2 IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false
sum=$(curl -fs -XPOST "$w2_URL/wake")
expect_eq "this worker ran all 6, the dependent after its dependency" "6 done done done done done done" \
	"$(jq -r .drain.done <<<"$sum") $(for k in 1 2 3 4 5 6; do printf '%s ' "$(job_field "${j[$k]}" status)"; done | sed 's/ $//')"
check "the dependent started once its dependency had finished" \
	test ! "$(job_field "${j[4]}" started_at)" \< "$(job_field "${j[1]}" finished_at)"
expect_eq "the unique key was let go, the group left nothing behind" "0 0 0" \
	"$(rcli exists "${Q2}uniq:u1") $(rcli scard "${Q2}gact:g1") $(rcli zcard "${Q2}gpend:g1")"
expect_eq "nothing pending, waiting, active or dead" "0 0 0 0" \
	"$(rcli zcard "${Q2}pending") $(rcli zcard "${Q2}waiting") $(rcli zcard "${Q2}active") $(rcli zcard "${Q2}dead")"
expect_eq "the metrics counted the old records under their type" 6 \
	"$(rcli hget "${Q2}metrics" n:done:noop)"

# ---- a rolling deploy: the previous worker drains this version's records ------
# (the packed spec is added, no field is gone: the take script of PREV2
# leases and settles a job this version's enqueue wrote)
Q3='wakeq:{up3}:'
id=$(wq enqueue noop --queue up3 --payload '{"v":3}' --max-attempts 4)
expect_eq "this version wrote the packed spec" 1 "$(rcli hexists "${Q3}job:$id" s)"
# worker lease max nsettle ttl done_max dead_max, then reg_ttl record
mapfile -t r < <(rcli eval "$(cat "$T/take$PREV2.lua")" 1 "$Q3" old-w 60000 1 0 600 10000 10000 0 0)
expect_eq "the take script of $PREV2 leased it: id type payload max_attempts" \
	"$id noop {\"v\":3} 4" "${r[7]} ${r[10]} ${r[11]} ${r[12]}"
mapfile -t r < <(rcli eval "$(cat "$T/take$PREV2.lua")" 1 "$Q3" old-w 60000 0 1 600 10000 10000 \
	"$id" "${r[8]}" d '{"old":3}' '' 0 100 0 0)
expect_eq "… and settled it done" "f done 3" "${r[2]} $(job_field "$id" status) $(job_field "$id" result.old)"
exit 0
