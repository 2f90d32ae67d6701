# shellcheck shell=bash
# chaos/lib.sh - the fault-injection harness shared by tests/chaos/*.sh.
# Source it; it sources servers.sh, tap.sh and wakeq.sh.
#
# A scenario starts real servers (Redis with AOF fsynced on every write,
# Postgres, wakeq-api, three wakeq-worker processes, the counting endpoint
# hitcount), sends http.request jobs through the API with jobload while it
# injects faults, then audits every job three ways: the API's answers
# (jobload's log), the executions (hitcount's log: one line per run of a
# job) and the records (Postgres rows and the Redis sets). The audit ends
# in "ok"/"not ok" lines and one JSON line of figures for
# docs/RELIABILITY.md (tests/chaos/report.sh).
#
#   CHAOS=quick|full     quick (default): the bounded subset run by make
#                        test; full: make chaos, longer and more faults
#   CHAOS_FIGURES=FILE   append the scenario's figures line to FILE
#   CHAOS_KEEP=DIR       keep the scenario's files in DIR/NAME
#   CHAOS_WORKER_BUILD=DIR, CHAOS_API_BUILD=DIR  run DIR/wakeq-worker or
#                        DIR/wakeq-api instead of this build's (an older
#                        build, to see what a scenario catches)
#
#   pick QUICK FULL      the value for the current mode
#   chaos_init NAME      temp dir, fault and in-flight files
#   chaos_start NAME [BALLAST]  chaos_init, then the servers of a scenario:
#                        Redis (with BALLAST filler keys), Postgres,
#                        hitcount, the API and the three workers
#   chaos_redis_start / chaos_redis_restart   Redis (AOF, appendfsync always)
#   chaos_counter_start  hitcount; sets HIT_URL
#   chaos_api_start      wakeq-api; sets API
#   chaos_worker_start I [VAR=VALUE...]  (re)starts worker slot I (1..3),
#                        WORKER_ID w<I>g<generation>, woken with ?wait=0
#   chaos_held [WID...]  ids of active jobs (held by one of WID) in Redis, now
#   chaos_held_pause     all active ids, and Redis paused 250 ms from that
#                        instant (for a fault that follows at once)
#   chaos_redis_ballast KEYS  data that makes a restart take a while
#   chaos_fault KIND START_US END_US TARGET [IDS...]  records a fault and
#                        the jobs in flight at it (their re-runs are allowed);
#                        with SNAP_US set (when the ids were read, before
#                        START_US), jobs that started between SNAP_US and
#                        WIN_US (default START_US) count as in flight too,
#                        counted by the hitcount named WIN_BY (default any);
#                        their restart is timed from ORIGIN_US (default
#                        END_US) on the hitcount named RESTART_BY (any)
#   chaos_load_start RATE SECONDS MS [PREFIX [MAX_ATTEMPTS]]  jobload in
#                        the background; chaos_load_wait waits for all
#   chaos_settle SECONDS every accepted job final; 0 when it happened
#   chaos_recovered SLACK [WHY]  the checks after the faults: every accepted
#                        job final within 3 leases + SLACK s, and reconcile
#                        finding no job to enqueue again (WHY: why not)
#   chaos_audit          the checks and the figures
#   chaos_gap SECONDS D...  pause between faults of D... seconds in a run
#   chaos_faults KIND TARGET SECONDS INJECT D...  one fault per D, spread
#                        over SECONDS of load: `INJECT D` makes it last D s
#                        (non-zero: no more faults); the jobs active just
#                        before are in flight at it. Sets OUTAGES ("IDX:D")
#   chaos_outage_answers IDX  what the API answered to the jobs sent
#                        during fault IDX: "SENT ACCEPTED REFUSED_503
#                        OTHER MAX_LATENCY_MS"

. "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/wakeq.sh"

CHAOS=${CHAOS:-quick}
pick() { if [ "$CHAOS" = full ]; then echo "$2"; else echo "$1"; fi; }
now_us() { date +%s%6N; }

LEASE=${CHAOS_LEASE:-2}        # seconds, the workers' LEASE
LEASE_MS=$(awk -v l="$LEASE" 'BEGIN { printf "%d", l * 1000 }')
GRACE=2                        # SHUTDOWN_GRACE; longer than any job here
TOKEN=chaos-token
Q=default
P="wakeq:{$Q}:"
NWORKERS=3
declare -a WPID WURL WID
declare -A WGEN

chaos_init() {
	SCEN=$1
	t_tmpdir
	# CHAOS_KEEP=DIR keeps a copy of the scenario's files (logs, answers,
	# executions) for a look after the run
	[ -n "${CHAOS_KEEP:-}" ] && on_exit "rm -rf '$CHAOS_KEEP/$SCEN'; mkdir -p '$CHAOS_KEEP'; cp -r '$T' '$CHAOS_KEEP/$SCEN'"
	FAULTS=$T/faults     # IDX KIND START END TARGET SNAP WIN WIN_BY ORIGIN RESTART_BY
	INFLIGHT=$T/inflight # IDX JOB_ID
	# more jobs in flight at a fault, whose re-runs are allowed but whose
	# first run after it is no restart (not timed as a recovery)
	INFLIGHT_MORE=$T/inflight.more
	LOAD=$T/load         # jobload's answers
	HITS=$T/hits         # hitcount's executions
	: >"$FAULTS"
	: >"$INFLIGHT"
	: >"$INFLIGHT_MORE"
	: >"$LOAD"
	: >"$HITS"
	NFAULT=0
	T_BEGIN=$SECONDS
	echo "# chaos scenario $SCEN, mode $CHAOS, LEASE=$LEASE"
}

chaos_start() {
	chaos_init "$1"
	chaos_redis_start
	start_postgres >/dev/null
	if [ -n "${2:-}" ]; then
		chaos_redis_ballast "$2" || not_ok "redis ballast"
	fi
	chaos_counter_start
	chaos_api_start
	chaos_workers_start || exit 1
}

_redis_args() {
	echo --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$T/redis" --save '' \
		--appendonly yes --appendfsync always --daemonize no \
		--enable-debug-command local --loglevel warning --logfile "$T/redis/log"
}

chaos_redis_start() {
	REDIS_PORT=$($FREEPORT)
	mkdir -p "$T/redis"
	REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	export REDIS_URL REDIS_PORT
	chaos_redis_restart
}

chaos_redis_restart() {
	# shellcheck disable=SC2046
	redis-server $(_redis_args) &
	REDIS_PID=$!
	on_exit "kill -CONT $REDIS_PID; kill_wait $REDIS_PID"
	wait_redis
}

# chaos_redis_ballast KEYS: KEYS filler keys, compacted into the AOF's base
# file, so that a restart spends a while LOADING (about 0.25 s for 300,000)
# as a real data set makes it do: clients meet that state, not only a
# refused connection.
chaos_redis_ballast() {
	rcli debug populate "$1" chaos:ballast 64 >/dev/null &&
		rcli bgrewriteaof >/dev/null &&
		wait_until 30 sh -c "redis-cli -p $REDIS_PORT info persistence | grep -q '^aof_rewrite_in_progress:0'"
}

# chaos_held_pause: like chaos_held (every active job), read in one
# transaction with CLIENT PAUSE WRITE for 250 ms, so that Redis changes
# nothing more (every queue script counts as a write) before the fault
# that follows at once (kill -9, SIGSTOP): the ids are exactly the jobs in
# flight when it begins. The pause is over (by the clock) when a frozen
# Redis thaws, so commands that reached it during the freeze run as they
# would have (a pause still on would drop those of clients gone meanwhile).
chaos_held_pause() {
	local sha
	sha=$(rcli script load "$HELD_LUA") || return 1
	printf 'MULTI\nEVALSHA %s 1 %s ""\nCLIENT PAUSE 250 WRITE\nEXEC\n' "$sha" "$P" |
		rcli --raw | grep -E '^[0-9a-f]{8}-[0-9a-f]{4}-'
}

chaos_counter_start() {
	"$BIN/tests/tools/hitcount" "$HITS" >"$T/counter.port" 2>"$T/counter.log" &
	CNT_PID=$!
	on_exit "kill_wait $CNT_PID"
	wait_until 5 test -s "$T/counter.port" || { echo "hitcount did not start"; return 1; }
	CNT_PORT=$(head -1 "$T/counter.port")
	HIT_URL=http://127.0.0.1:$CNT_PORT/hit
}

chaos_api_start() {
	API_PORT=$($FREEPORT)
	env PORT="$API_PORT" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN=$TOKEN \
		DATABASE_URL="${DATABASE_URL:-}" RECONCILE_INTERVAL=3 RECONCILE_MIN_AGE=5 \
		"$@" "${CHAOS_API_BUILD:-$BIN}/wakeq-api" >>"$T/api.log" 2>&1 &
	API_PID=$!
	on_exit "kill_wait $API_PID"
	API=http://127.0.0.1:$API_PORT
	wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" || { diag "$T/api.log"; return 1; }
}

WORKER_ENV=()
chaos_worker_start() {
	local i=$1 g name pid url
	shift
	g=$((${WGEN[$i]:-0} + 1))
	WGEN[$i]=$g
	name=w${i}g$g
	BIN=${CHAOS_WORKER_BUILD:-$BIN} start_worker "$name" QUEUES=$Q CONCURRENCY=4 LEASE="$LEASE" IDLE_TIMEOUT=3600 EMPTY_WAKE_LINGER=3600 \
		EXIT_ON_IDLE=false ALLOW_PRIVATE_NETWORKS=loopback SHUTDOWN_GRACE=$GRACE \
		DATABASE_URL="${DATABASE_URL:-}" WORKER_ID="$name" "${WORKER_ENV[@]}" "$@" || return 1
	eval "pid=\$${name}_PID url=\$${name}_URL"
	WPID[$i]=$pid
	WURL[$i]=$url
	WID[$i]=$name
	curl -fs -m 5 -XPOST "$url/wake?wait=0" >/dev/null
}

chaos_workers_start() {
	local i
	for i in $(seq 1 $NWORKERS); do chaos_worker_start "$i" || return 1; done
}

# The ids of the active jobs (those held by worker $1 when given).
HELD_LUA="local ids = redis.call('ZRANGE', KEYS[1] .. 'active', 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local w = ARGV[1] ~= '' and redis.call('HGET', KEYS[1] .. 'job:' .. id, 'worker')
  for i = 1, #ARGV do
    if ARGV[i] == '' or ARGV[i] == w then out[#out + 1] = id; break end
  end
end
return out"
# "ID STATUS" of every entry of the queue's finals log.
FINALS_LUA="local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1] .. 'finals', '-', '+')) do
  local id, st = '?', '?'
  for i = 1, #e[2], 2 do
    if e[2][i] == 'id' then id = e[2][i + 1] elseif e[2][i] == 'status' then st = e[2][i + 1] end
  end
  out[#out + 1] = id .. ' ' .. st
end
return out"
chaos_held() { rcli --raw eval "$HELD_LUA" 1 "$P" "${@:-}" 2>/dev/null; }

chaos_fault() {
	local kind=$1 t0=$2 t1=$3 target=$4 id
	shift 4
	NFAULT=$((NFAULT + 1))
	echo "$NFAULT $kind $t0 $t1 $target ${SNAP_US:-$t0} ${WIN_US:-$t0} ${WIN_BY:-*}" \
		"${ORIGIN_US:-$t1} ${RESTART_BY:-*}" >>"$FAULTS"
	SNAP_US='' WIN_US='' WIN_BY='' ORIGIN_US='' RESTART_BY=''
	for id in "$@"; do echo "$NFAULT $id" >>"$INFLIGHT"; done
}

LOAD_EXEC=() # a command prefix for jobload (ip netns exec NS)
LOAD_PIDS=()
chaos_load_start() { # RATE SECONDS MS [PREFIX [MAX_ATTEMPTS]]
	local pfx=${4:-$SCEN}
	"${LOAD_EXEC[@]}" "$BIN/tests/tools/jobload" --api "$API" --token $TOKEN --hit "$HIT_URL" \
		--out "$LOAD" --rate "$1" --seconds "$2" --ms "$3" --prefix "$pfx" \
		--max-attempts "${5:-0}" --lanes 4 --timeout 20 >"$T/load.$pfx" 2>&1 &
	LOAD_PIDS+=($!)
	on_exit "kill_wait $!"
}

chaos_load_wait() {
	local p
	for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	LOAD_PIDS=()
}

# chaos_gap SECONDS D1 D2...: the pause before each of n faults lasting
# D1..Dn seconds, so that they all fall inside SECONDS of load.
chaos_gap() {
	local s=$1
	shift
	echo "$@" | awk -v s="$s" '{ for (i = 1; i <= NF; i++) d += $i; g = (s - d) / (NF + 1); printf "%.1f", (g < 0.5 ? 0.5 : g) }'
}

chaos_faults() {
	local kind=$1 target=$2 secs=$3 inject=$4 gap d t0 t1 held
	shift 4
	gap=$(chaos_gap "$secs" "$@")
	OUTAGES=()
	for d in "$@"; do
		sleep "$gap"
		t0=$(now_us)
		held=$(chaos_held_pause)
		"$inject" "$d" || break
		t1=$(now_us)
		# shellcheck disable=SC2086
		chaos_fault "$kind" "$t0" "$t1" "$target" $held
		OUTAGES+=("$NFAULT:$d")
	done
}

chaos_outage_answers() {
	awk -v F="$1" -v FAULTS="$FAULTS" '
		BEGIN { while ((getline l < FAULTS) > 0) { split(l, f, " "); if (f[1] == F) { a = f[3]; b = f[4] } } }
		$7 >= a && $7 <= b { n++; if ($2 == 200 || $2 == 202) ok++; else if ($2 == 503) u++; else o++; if ($8 > m) m = $8 }
		END { printf "%d %d %d %d %d\n", n, ok, u, o, m }' "$LOAD"
}

pgq() { psql "$DATABASE_URL" -Atq -F ' ' -c "$1"; }

# Unfinished accepted jobs: Redis live sets, and Postgres rows not final.
chaos_unfinished() {
	local r p=0
	r=$(rcli --raw eval "return redis.call('ZCARD', KEYS[1] .. 'pending') +
		redis.call('ZCARD', KEYS[1] .. 'active') + redis.call('ZCARD', KEYS[1] .. 'delayed')" 1 "$P" 2>/dev/null)
	[ -n "${DATABASE_URL:-}" ] &&
		p=$(pgq "select count(*) from jobs where status not in ('done','failed','cancelled')" 2>/dev/null)
	echo $((${r:-1} + ${p:-1}))
}

chaos_settle() {
	local t0=$SECONDS
	while [ $((SECONDS - t0)) -lt "$1" ]; do
		[ "$(chaos_unfinished)" = 0 ] && return 0
		sleep 0.2
	done
	return 1
}

chaos_recovered() {
	check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + $1))
	expect_eq "reconcile finds no job to enqueue again${2:+ ($2)}" 0 \
		"$(curl -s -XPOST -H "Authorization: Bearer $TOKEN" "$API/v1/reconcile" | jq -r .requeued)"
}

# How many of the keys in file $1 still have an idempotency record in Redis.
_idem_left() {
	local n=0 batch
	while mapfile -t -n 500 batch && [ ${#batch[@]} -gt 0 ]; do
		n=$((n + $(rcli exists "${batch[@]/#/${P}idem:}")))
	done <"$1"
	echo $n
}

# ---- the audit ----------------------------------------------------------

# Writes the job table $T/jobs: KEY ID HITS PGSTATUS ATTEMPTS MAX REDIS
# (REDIS: the set the id is in: done dead pending active delayed or -).
_jobs_table() {
	local z
	for z in 'done' dead pending active delayed; do
		rcli --raw zrange "${P}$z" 0 -1 2>/dev/null | sed "s/\$/ $z/"
	done >"$T/redis.sets"
	if [ -n "${DATABASE_URL:-}" ]; then
		pgq "select id, status, attempts, max_attempts, coalesce(wakeq_us(finished_at), 0) from jobs" >"$T/pg.rows"
		awk '$5 > 0 { print $5 }' "$T/pg.rows" >"$T/finished"
	else
		: >"$T/pg.rows"
		rcli --raw zrange "${P}done" 0 -1 withscores 2>/dev/null |
			awk 'NR % 2 == 0 { printf "%d\n", $1 * 1000 }' >"$T/finished"
	fi
	awk -v HITS="$T/hits" -v PG="$T/pg.rows" -v RS_="$T/redis.sets" '
		BEGIN {
			while ((getline l < HITS) > 0) { split(l, f, " "); hits[f[2]]++ }
			while ((getline l < PG) > 0) { split(l, f, " "); pg[f[1]] = f[2] " " f[3] " " f[4] }
			while ((getline l < RS_) > 0) { split(l, f, " "); rs[f[1]] = f[2] }
		}
		$2 == 200 || $2 == 202 {
			k = $1; id = $3
			print k, id, (k in hits) ? hits[k] : 0, (id in pg) ? pg[id] : "- - -", (id in rs) ? rs[id] : "-"
		}' "$LOAD" >"$T/jobs"
}

# Adds to the in-flight list the jobs that started between a fault's
# snapshot (SNAP_US) and WIN_US: taken after the leases were read, just
# before the fault, they were in flight all the same (with Redis frozen or
# down, a job that starts during the fault was taken before it).
_window_inflight() {
	awk -v FAULTS="$FAULTS" -v HITS="$T/hits" '
		BEGIN {
			while ((getline l < FAULTS) > 0) {
				split(l, f, " ")
				if (f[6] < f[7]) { n++; fi[n] = f[1]; fa[n] = f[6]; fb[n] = f[7]; fby[n] = f[8] }
			}
			while ((getline l < HITS) > 0) {
				split(l, f, " ")
				for (i = 1; i <= n; i++)
					if (f[3] >= fa[i] && f[3] <= fb[i] && (fby[i] == "*" || fby[i] == f[1]))
						w[fi[i], f[2]] = 1
			}
		}
		$2 == 200 || $2 == 202 { for (i = 1; i <= n; i++) if ((fi[i], $1) in w) print fi[i], $3 }' "$LOAD" >>"$INFLIGHT"
}

# Recovery per fault, in ms: from the fault's end to the first job that
# completed after it (finished_at), and from ORIGIN (the fault's end, or
# its start where leases can expire during it) to the restart (next
# execution, seen by RESTART_BY) of each job that was in flight at the
# fault and ran again; the larger of the two. A job caught again by a
# later fault before it restarted (taken by the next worker to die) is
# that fault's to time. Lines: IDX KIND RECOVERY_MS RESTARTED.
_recovery() {
	awk -v FAULTS="$FAULTS" -v INF="$INFLIGHT" -v HITS="$T/hits" -v FIN="$T/finished" -v LOAD="$LOAD" '
		BEGIN {
			while ((getline l < LOAD) > 0) { split(l, f, " "); if (f[3] != "-") key[f[3]] = f[1] }
			while ((getline l < HITS) > 0) { split(l, f, " "); nh[f[2]]++; ht[f[2], nh[f[2]]] = f[3]; hb[f[2], nh[f[2]]] = f[1] }
			nf = 0
			while ((getline l < FIN) > 0) fin[++nf] = l + 0
			nfa = 0
			while ((getline l < FAULTS) > 0) {
				split(l, f, " "); nfa++
				fidx[nfa] = f[1]; fkind[nfa] = f[2]; fend[nfa] = f[4]; forg[f[1]] = f[9]; fby[nfa] = f[10]
			}
			while ((getline l < INF) > 0) {
				split(l, f, " ")
				inf[f[1]] = inf[f[1]] " " f[2]
				faultsof[f[2]] = faultsof[f[2]] " " f[1]
			}
			for (q = 1; q <= nfa; q++) {
				idx = fidx[q]; t1 = fend[q]; org = forg[idx]; by = fby[q]
				best = -1
				for (i = 1; i <= nf; i++) if (fin[i] >= t1 && (best < 0 || fin[i] < best)) best = fin[i]
				rec = best < 0 ? 0 : best - t1
				n = split(inf[idx], ids, " "); restarted = 0
				for (j = 1; j <= n; j++) {
					k = key[ids[j]]
					for (h = 1; h <= nh[k]; h++) if (ht[k, h] >= org && (by == "*" || hb[k, h] == by)) break
					if (h > nh[k]) continue
					m = split(faultsof[ids[j]], gs, " "); later = 0
					for (g = 1; g <= m; g++)
						if (gs[g] != idx && forg[gs[g]] > org && forg[gs[g]] <= ht[k, h]) later = 1
					if (later) continue
					restarted++
					if (ht[k, h] - org > rec) rec = ht[k, h] - org
				}
				printf "%s %s %d %d\n", idx, fkind[q], rec / 1000, restarted
			}
		}' >"$T/recovery"
}

# chaos_audit [EXTRA_JSON]: the checks every scenario makes, and its
# figures line (EXTRA_JSON: more "key":value pairs for it).
chaos_audit() {
	local extra=${1:-} accepted refused bad_ref half lost stuck dead_unstarted
	local dup_ok dup_bad runs rec_max rec_p50 nrec faults mism unfinished t_s
	_jobs_table
	_window_inflight
	_recovery
	accepted=$(wc -l <"$T/jobs")
	refused=$(awk '$2 != 200 && $2 != 202' "$LOAD" | wc -l)
	# Refusals must be 503 + Retry-After + the JSON error "unavailable".
	bad_ref=$(awk '$2 != 200 && $2 != 202 && !($2 == 503 && $4 != "-" && $5 == "unavailable" && $6 == 1)' "$LOAD" | wc -l)
	# A refused job leaves nothing: no row, no execution, no Redis record.
	awk '$2 != 200 && $2 != 202 { print $1 }' "$LOAD" >"$T/refused.keys"
	half=0
	if [ -s "$T/refused.keys" ]; then
		half=$(awk -v HITS="$T/hits" 'BEGIN { while ((getline l < HITS) > 0) { split(l, f, " "); h[f[2]] = 1 } }
			$1 in h' "$T/refused.keys" | wc -l)
		if [ -n "${DATABASE_URL:-}" ]; then
			half=$((half + $(pgq "select count(*) from jobs where idempotency_key in ($(sed "s/.*/'&'/" "$T/refused.keys" | paste -sd,))")))
		fi
		half=$((half + $(_idem_left "$T/refused.keys")))
	fi
	# jobs: KEY ID HITS PGSTATUS ATTEMPTS MAX REDIS
	if [ -n "${DATABASE_URL:-}" ]; then
		lost=$(awk '$4 == "-" || ($4 != "done" && $4 != "failed" && $7 == "-") || ($4 == "done" && $3 == 0)' "$T/jobs" | wc -l)
		stuck=$(awk '$4 != "-" && $4 != "done" && $4 != "failed" && $4 != "cancelled" && $7 != "-"' "$T/jobs" | wc -l)
		dead_unstarted=$(awk '$4 == "failed" && $3 < $6' "$T/jobs" | wc -l)
		mism=$(awk '($7 == "done" && $4 != "done") || ($7 == "dead" && $4 != "failed")' "$T/jobs" | wc -l)
	else
		lost=$(awk '$7 == "-" || ($7 == "done" && $3 == 0)' "$T/jobs" | wc -l)
		stuck=$(awk '$7 == "pending" || $7 == "active" || $7 == "delayed"' "$T/jobs" | wc -l)
		dead_unstarted=$(awk '$7 == "dead" && $3 < 1' "$T/jobs" | wc -l)
		mism=0
	fi
	runs=$(awk '{ n += $3 } END { print n + 0 }' "$T/jobs")
	cat "$INFLIGHT" "$INFLIGHT_MORE" >"$T/inflight.all"
	dup_ok=$(awk -v INF="$T/inflight.all" 'BEGIN { while ((getline l < INF) > 0) { split(l, f, " "); a[f[2]] = 1 } }
		$3 > 1 && ($2 in a) { n += $3 - 1 } END { print n + 0 }' "$T/jobs")
	awk -v INF="$T/inflight.all" 'BEGIN { while ((getline l < INF) > 0) { split(l, f, " "); a[f[2]] = 1 } }
		$3 > 1 && !($2 in a)' "$T/jobs" >"$T/dup.bad"
	dup_bad=$(awk '{ n += $3 - 1 } END { print n + 0 }' "$T/dup.bad")
	nrec=$(wc -l <"$T/recovery")
	rec_max=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$T/recovery")
	rec_p50=$(awk '{ print $3 }' "$T/recovery" | sort -n | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : 0 }')
	faults=$(awk '{ n[$2]++ } END { s = ""; for (k in n) s = s (s ? "," : "") "\"" k "\":" n[k]; print "{" s "}" }' "$FAULTS")
	# Every completion still in the finals log is in Postgres already
	# (the log may keep an entry until a worker next settles or starts;
	# what must not be is a completion that only the log has).
	unfinished=0
	if [ -n "${DATABASE_URL:-}" ]; then
		rcli --raw eval "$FINALS_LUA" 1 "$P" >"$T/finals.left" 2>/dev/null
		unfinished=$(awk -v PG="$T/pg.rows" 'BEGIN { while ((getline l < PG) > 0) { split(l, f, " "); st[f[1]] = f[2] } }
			st[$1] != $2' "$T/finals.left" | wc -l)
	fi
	t_s=$((SECONDS - T_BEGIN))

	check "jobs accepted through the API under faults ($accepted)" test "$accepted" -gt 0
	expect_eq "jobs lost" 0 "$lost"
	expect_eq "jobs stuck" 0 "$stuck"
	expect_eq "jobs dead-lettered without having started max_attempts times" 0 "$dead_unstarted"
	expect_eq "re-runs of jobs not in flight at any fault (finished jobs run again)" 0 "$dup_bad"
	expect_eq "refusals that are not JSON 503 'unavailable' with Retry-After" 0 "$bad_ref"
	expect_eq "refused jobs that left a row, a Redis record or a run" 0 "$half"
	expect_eq "jobs whose Postgres row disagrees with Redis" 0 "$mism"
	[ -n "${DATABASE_URL:-}" ] && expect_eq "completions in the finals log that Postgres lacks ($(wc -l <"$T/finals.left") entries left)" 0 "$unfinished"
	if [ "$nrec" -gt 0 ]; then
		check "recovery <= LEASE + 100 ms at every fault (max ${rec_max} ms, median ${rec_p50} ms over $nrec faults)" \
			test "$rec_max" -le $((LEASE_MS + 100))
	fi
	if [ "$dup_bad" -gt 0 ] || [ "$lost" -gt 0 ] || [ "$stuck" -gt 0 ]; then
		echo "# jobs (KEY ID HITS PG ATTEMPTS MAX REDIS) that failed a check:"
		head -20 "$T/dup.bad" | diag /dev/stdin
		awk '$4 != "done" || $3 != 1' "$T/jobs" | head -20 | diag /dev/stdin
	fi
	awk '$3 > '"$((LEASE_MS + 100))" "$T/recovery" | head -10 | sed 's/^/# slow recovery: /'

	FIGURES=$(printf '{"scenario":"%s","mode":"%s","lease_ms":%d,"jobs":%d,"refused_503":%d,"faults":%s,"executions":%d,"lost":%d,"stuck":%d,"dead_unstarted":%d,"reruns_in_flight":%d,"reruns_finished":%d,"half_written":%d,"recovery_max_ms":%d,"recovery_p50_ms":%d,"seconds":%d%s}' \
		"$SCEN" "$CHAOS" "$LEASE_MS" "$accepted" "$refused" "$faults" "$runs" "$lost" "$stuck" \
		"$dead_unstarted" "$dup_ok" "$dup_bad" "$half" "$rec_max" "$rec_p50" "$t_s" "${extra:+,$extra}")
	echo "# figures: $FIGURES"
	[ -n "${CHAOS_FIGURES:-}" ] && echo "$FIGURES" >>"$CHAOS_FIGURES"
	return 0
}
