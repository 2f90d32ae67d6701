# peers.sh - the peers' side of tests/bench/core.sh (issue 14): BullMQ
# (npm, bullmq_ready) and RQ (Debian python3-rq, rq_ready) measured in
# the same run on the same redis-server as wakeq, by the handlers
# benchmark's peer scripts (tests/bench/handlers/bullmq_bench.js,
# rq_bench.py; the idle one tests/bench/cloudrun/bullmq_idle.js). Sourced
# by core.sh after its helpers (ra, redis_cpu, log, median) and servers
# (A_PORT, A_URL); each measurement goes with core.sh's part of the same
# name, PEERS="bullmq rq" (default) picks the peers, PEERS= none.
#
#   peers_idle_start    in the background, on a redis-server of its own:
#                       Redis commands (Lua-internal included) over
#                       IDLE_WINDOW s of one awake idle worker, BullMQ
#                       then RQ
#   peers_run           on server A: the drains (part drain) and the
#                       enqueues (part enqueue), PEER_RUNS rounds
#   peers_figures       waits for the idle measurement; sets P[KEY]
#                       (medians; "" when not measured) and PC[ROW] (the
#                       table cells)
#
# Drain: N jobs added (untimed, 1,000 a call), then one worker process
# drains them: BullMQ at concurrency 1 and 50 (PEER_N jobs), RQ's
# SimpleWorker (RQ_N) and its forking Worker (RQ_FORK_N: ~30 ms a job).
# Redis CPU (INFO cpu) and commands (INFO commandstats, Lua-internal
# included) are counted over the drain process's life; the jobs/s come
# from the system's own timestamps (first start -> last end). The
# commands a client sends (round trips, if it does not pipeline) are read
# from MONITOR on a run of PEER_MON_N jobs of its own: MONITOR slows
# Redis down, so that run gives no other figure.

PEERS=${PEERS-bullmq rq}
PEER_N=${PEER_N:-$N}              # BullMQ drain jobs
RQ_N=${RQ_N:-$PEER_N}             # RQ SimpleWorker drain jobs
RQ_FORK_N=${RQ_FORK_N:-500}       # RQ Worker (a fork a job) drain jobs
PEER_RUNS=${PEER_RUNS:-$RUNS}
PEER_MON_N=${PEER_MON_N:-1000}
BULL_CONCS=${BULL_CONCS:-"1 50"}
PEER_ENQ_ONE=${PEER_ENQ_ONE:-$ENQ_ONE}
PEER_ENQ_MANY=${PEER_ENQ_MANY:-$ENQ_MANY}
PEER_HD=$TOP/tests/bench/handlers

. tests/lib/runmodel.sh # client_cmds
rq_ready
[[ " $PEERS " == *" rq "* ]] || RQ_OK=0 RQ_WHY="left out (PEERS)"
BULL_OK=0 BULL_WHY="left out (PEERS)"
[[ " $PEERS " != *" bullmq "* ]] || bullmq_ready

# bull ARGS / rq ARGS: the peer script; PEER_RSS=FILE: its peak RSS, KiB, into FILE
bull() { NODE_PATH=$NPM_DIR/node_modules ${PEER_RSS:+/usr/bin/time -f %M -o "$PEER_RSS"} node "$PEER_HD/bullmq_bench.js" "$@"; }
rq() { (cd "$PEER_HD" && PYTHONDONTWRITEBYTECODE=1 ${PEER_RSS:+/usr/bin/time -f %M -o "$PEER_RSS"} /usr/bin/python3 rq_bench.py "$@"); }
# peer_calls PORT: the commands counted since CONFIG RESETSTAT, all of
# them but our own INFO and CONFIG (core.sh's cmdstats also leaves out
# HGETALL, which RQ sends).
peer_calls() {
	redis-cli -p "$1" info commandstats | tr -d '\r' |
		sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' |
		awk '$1 != "info" && $1 !~ /^config/ {s += $2} END {print s + 0}'
}

# peer_per_min PORT: peer_calls PORT as commands a minute of IDLE_WINDOW s.
peer_per_min() { peer_calls "$1" | awk -v w="$IDLE_WINDOW" '{printf "%.1f", $1 * 60 / w}'; }

# peer_drain LABEL bull|rq N CONC|simple|fork [mon]: one drain on server A;
# a line "LABEL conc=… n=… done=… span_s=… tput=… redis_us_job=…
# cmds_job=… hwm_kib=…" (mon: "LABEL n=… rt_job=… cmds_job=…") into $T/peers.
peer_drain() {
	local label=$1 sys=$2 n=$3 conc=$4 mon=${5:-} r0 r1 calls line mpid c l
	ra flushall >/dev/null
	if [ "$sys" = bull ]; then bull "$A_PORT" add "$n" 1000 >/dev/null; else rq "$A_URL" enqueue "$n" 1000 >/dev/null; fi
	if [ -n "$mon" ]; then
		redis-cli -p "$A_PORT" monitor >"$T/peer.mon" 2>/dev/null &
		mpid=$!
		sleep 0.3
	else
		ra config resetstat >/dev/null
		r0=$(redis_cpu "$A_PORT")
	fi
	if [ "$sys" = bull ]; then
		line=$(PEER_RSS=$T/peer.rss bull "$A_PORT" drain noop "$n" "$conc")
	else
		PEER_RSS=$T/peer.rss rq "$A_URL" drain "$conc"
	fi
	if [ -n "$mon" ]; then
		sleep 0.3 # MONITOR lines may trail
		kill "$mpid"
		wait "$mpid" 2>/dev/null || true
		c=$(client_cmds "$T/peer.mon" | wc -l)
		l=$(grep -c '^[0-9.]* \[[0-9]* lua\]' "$T/peer.mon" || true)
		echo "$label n=$n rt_job=$(awk -v c="$c" -v n="$n" 'BEGIN {printf "%.2f", c / n}') cmds_job=$(awk -v c="$c" -v l="$l" -v n="$n" 'BEGIN {printf "%.2f", (c + l) / n}')" |
			tee -a "$T/peers" >&2
		return
	fi
	r1=$(redis_cpu "$A_PORT")
	calls=$(peer_calls "$A_PORT")
	[ "$sys" = bull ] || line=$(rq "$A_URL" span "$n")
	echo "$label conc=$conc n=$n $line $(awk -v r0="$r0" -v r1="$r1" -v c="$calls" -v n="$n" \
		'BEGIN {printf "redis_us_job=%.2f cmds_job=%.2f", (r1 - r0) * 1e6 / n, c / n}') hwm_kib=$(tail -1 "$T/peer.rss")" |
		tee -a "$T/peers" >&2
}

# peer_enq LABEL bull|rq N BATCH: one enqueue run on server A.
peer_enq() {
	local label=$1 sys=$2 n=$3 batch=$4 r0 r1 line
	ra flushall >/dev/null
	r0=$(redis_cpu "$A_PORT")
	if [ "$sys" = bull ]; then line=$(bull "$A_PORT" add "$n" "$batch"); else line=$(rq "$A_URL" enqueue "$n" "$batch"); fi
	r1=$(redis_cpu "$A_PORT")
	echo "$label batch=$batch $line $(awk -v r0="$r0" -v r1="$r1" -v n="$n" 'BEGIN {printf "redis_us_job=%.2f", (r1 - r0) * 1e6 / n}')" |
		tee -a "$T/peers" >&2
}

peers_run() {
	local i c
	: >>"$T/peers"
	for i in $(seq 1 "$PEER_RUNS"); do
		if part drain; then
			if [ "$BULL_OK" = 1 ]; then
				for c in $BULL_CONCS; do
					log "peers: BullMQ drain C=$c run $i/$PEER_RUNS ($PEER_N jobs)"
					peer_drain "bull-c$c" bull "$PEER_N" "$c"
				done
			fi
			if [ "$RQ_OK" = 1 ]; then
				log "peers: RQ SimpleWorker drain run $i/$PEER_RUNS ($RQ_N jobs)"
				peer_drain rq-simple rq "$RQ_N" simple
				log "peers: RQ Worker drain run $i/$PEER_RUNS ($RQ_FORK_N jobs)"
				peer_drain rq-fork rq "$RQ_FORK_N" fork
			fi
		fi
		if part enqueue; then
			log "peers: enqueue run $i/$PEER_RUNS"
			if [ "$BULL_OK" = 1 ]; then
				peer_enq enq-bull-one bull "$PEER_ENQ_ONE" 1
				peer_enq enq-bull-batch bull "$PEER_ENQ_MANY" 1000
			fi
			if [ "$RQ_OK" = 1 ]; then
				peer_enq enq-rq-one rq "$PEER_ENQ_ONE" 1
				peer_enq enq-rq-batch rq "$PEER_ENQ_MANY" 1000
			fi
		fi
	done
	if part drain; then
		log "peers: client commands under MONITOR ($PEER_MON_N jobs a run)"
		if [ "$BULL_OK" = 1 ]; then
			for c in $BULL_CONCS; do peer_drain "mon-bull-c$c" bull "$PEER_MON_N" "$c" mon; done
		fi
		if [ "$RQ_OK" = 1 ]; then
			peer_drain mon-rq-simple rq "$PEER_MON_N" simple mon
			peer_drain mon-rq-fork rq "$((PEER_MON_N < RQ_FORK_N ? PEER_MON_N : RQ_FORK_N))" fork mon
		fi
	fi
	ra flushall >/dev/null
}

# ---- idle: one awake worker on an empty queue, on a server of its own ----------
peers_idle_bg() {
	local port=$1 url=redis://127.0.0.1:$1 l pid
	if [ "$BULL_OK" = 1 ]; then
		NODE_PATH=$NPM_DIR/node_modules node tests/bench/cloudrun/bullmq_idle.js \
			"$port" 1 "$IDLE_WINDOW" 2>>"$T/peer-idle.err" |
			while read -r l; do
				[ "$l" = ready ] && redis-cli -p "$port" config resetstat >/dev/null
				[ "$l" = end ] && echo "idle-bull per_min=$(peer_per_min "$port")" >>"$T/peers"
			done
	fi
	if [ "$RQ_OK" = 1 ]; then
		rq "$url" work 2>>"$T/peer-idle.err" &
		pid=$!
		sleep 3 # its start (registration, the first BLPOP)
		redis-cli -p "$port" config resetstat >/dev/null
		sleep "$IDLE_WINDOW"
		echo "idle-rq per_min=$(peer_per_min "$port")" >>"$T/peers"
		kill_wait "$pid"
	fi
}
peers_idle_start() {
	[ "$BULL_OK$RQ_OK" != 00 ] || return 0
	local keep_port=$REDIS_PORT keep_url=$REDIS_URL keep_pid=$REDIS_PID
	start_redis
	PEER_IDLE_PORT=$REDIS_PORT
	REDIS_PORT=$keep_port REDIS_URL=$keep_url REDIS_PID=$keep_pid
	log "peers: one idle worker each for ${IDLE_WINDOW} s (background, BullMQ then RQ)"
	peers_idle_bg "$PEER_IDLE_PORT" &
	PEER_IDLE_BG=$!
}

# ---- figures ---------------------------------------------------------------------
pmed() {
	local v
	v=$(grep -E "^$1 " "$T/peers" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p")
	[ -z "$v" ] || median <<<"$v"
}
# pcell OK WHY TEXT: TEXT, or why the peer was not run
pcell() { if [ "$1" = 1 ]; then echo "$3"; else echo "not run: $2"; fi; }
# phi / plo VALUE...: the highest / lowest of the values given ("" left out)
phi() { printf '%s\n' "$@" | grep -v '^$' | sort -g | tail -1; }
plo() { printf '%s\n' "$@" | grep -v '^$' | sort -g | head -1; }
# bcell KEY FORMAT / rcell KEY FORMAT: a cell of core.sh's table, BullMQ's
# figure KEY at each concurrency, RQ's of SimpleWorker and Worker; FORMAT:
# psame, pmib (KiB -> MiB) or pnum (thousands)
bcell() {
	local c out=
	for c in $BULL_CONCS; do out="$out${out:+, }$($2 "${P[bull-c$c.$1]}") (C=$c)"; done
	pcell "$BULL_OK" "$BULL_WHY" "$out"
}
rcell() { pcell "$RQ_OK" "$RQ_WHY" "$($2 "${P[rq-simple.$1]}") (SimpleWorker), $($2 "${P[rq-fork.$1]}") (Worker)"; }
psame() { echo "${1:-–}"; }
pmib() { [ -n "$1" ] && awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}' || echo –; }
pnum() { [ -n "$1" ] && fmt0 "$1" || echo –; }
# shellcheck disable=SC2034 # P and PC are read by core.sh
peers_figures() {
	local c k
	[ -z "${PEER_IDLE_BG:-}" ] || wait "$PEER_IDLE_BG" || true
	declare -gA P PC
	for c in $BULL_CONCS; do
		for k in tput redis_us_job cmds_job hwm_kib; do P[bull-c$c.$k]=$(pmed "bull-c$c" "$k"); done
		P[bull-c$c.rt_job]=$(pmed "mon-bull-c$c" rt_job)
	done
	for c in simple fork; do
		for k in tput redis_us_job cmds_job hwm_kib; do P[rq-$c.$k]=$(pmed "rq-$c" "$k"); done
		P[rq-$c.rt_job]=$(pmed "mon-rq-$c" rt_job)
	done
	for k in enq-bull-one enq-bull-batch enq-rq-one enq-rq-batch; do P[$k]=$(pmed "$k" rate); done
	P[idle-bull]=$(pmed idle-bull per_min) P[idle-rq]=$(pmed idle-rq per_min)
	# BullMQ's best configuration (the issue's yardstick) and the best peer
	local bt=() br=() bc=() bm=()
	for c in $BULL_CONCS; do
		bt+=("${P[bull-c$c.tput]}") br+=("${P[bull-c$c.redis_us_job]}")
		bc+=("${P[bull-c$c.cmds_job]}") bm+=("${P[bull-c$c.rt_job]}")
	done
	P[bull.tput]=$(phi "${bt[@]}")
	P[bull.redis_us_job]=$(plo "${br[@]}")
	P[best.tput]=$(phi "${P[bull.tput]}" "${P[rq-simple.tput]}" "${P[rq-fork.tput]}")
	P[best.redis_us_job]=$(plo "${P[bull.redis_us_job]}" "${P[rq-simple.redis_us_job]}" "${P[rq-fork.redis_us_job]}")
	P[best.cmds_job]=$(plo "${bc[@]}" "${P[rq-simple.cmds_job]}" "${P[rq-fork.cmds_job]}")
	P[best.rt_job]=$(plo "${bm[@]}" "${P[rq-simple.rt_job]}" "${P[rq-fork.rt_job]}")
	P[best.enq_one]=$(phi "${P[enq-bull-one]}" "${P[enq-rq-one]}")
	P[best.enq_batch]=$(phi "${P[enq-bull-batch]}" "${P[enq-rq-batch]}")
	P[best.idle]=$(plo "${P[idle-bull]}" "${P[idle-rq]}")
	P[best.hwm_mib]=$(plo "${P[bull-c${BULL_CONCS%% *}.hwm_kib]}" "${P[rq-simple.hwm_kib]}" |
		awk '{printf "%.1f", $1 / 1024}')
	PC[bull.tput]=$(bcell tput pnum) PC[rq.tput]=$(rcell tput pnum)
	PC[bull.redis]=$(bcell redis_us_job psame) PC[rq.redis]=$(rcell redis_us_job psame)
	PC[bull.cmds]=$(bcell cmds_job psame) PC[rq.cmds]=$(rcell cmds_job psame)
	PC[bull.rt]=$(bcell rt_job psame) PC[rq.rt]=$(rcell rt_job psame)
	PC[bull.hwm]=$(bcell hwm_kib pmib) PC[rq.hwm]=$(rcell hwm_kib pmib)
	PC[bull.enq_one]=$(pcell "$BULL_OK" "$BULL_WHY" "$(pnum "${P[enq-bull-one]}") (Queue.add)")
	PC[bull.enq_batch]=$(pcell "$BULL_OK" "$BULL_WHY" "$(pnum "${P[enq-bull-batch]}") (addBulk, 1,000 a call)")
	PC[rq.enq_one]=$(pcell "$RQ_OK" "$RQ_WHY" "$(pnum "${P[enq-rq-one]}") (enqueue)")
	PC[rq.enq_batch]=$(pcell "$RQ_OK" "$RQ_WHY" "$(pnum "${P[enq-rq-batch]}") (enqueue_many, 1,000 a call)")
	PC[bull.idle]=$(pcell "$BULL_OK" "$BULL_WHY" "$(psame "${P[idle-bull]}")")
	PC[rq.idle]=$(pcell "$RQ_OK" "$RQ_WHY" "$(psame "${P[idle-rq]}")")
}

# pvs WAKEQ PEER: "WAKEQ / PEER" as a ratio with 2 decimals, "–" without a peer figure.
pvs() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf (b > 0 ? "%.2f" : "–"), a / (b > 0 ? b : 1)}' || echo –; }
# pmet WAKEQ PEER FACTOR ge|le: whether WAKEQ >= (<=) FACTOR × PEER.
pmet() {
	[ -n "$2" ] || { echo "not measured"; return; }
	awk -v m="$1" -v p="$2" -v f="$3" -v d="$4" \
		'BEGIN {print ((d == "ge" && m >= f * p) || (d == "le" && m <= f * p)) ? "yes" : "**no**"}'
}
