# servers.sh - start real redis-server and postgres for tests, on free
# loopback ports in a temp dir; stop them by pid on exit. Source it.
#
#   t_tmpdir            makes $T (removed on exit)
#   start_redis         sets REDIS_PORT REDIS_URL REDIS_PID
#   stop_redis / restart_redis
#   start_redis_cluster [MASTERS [REPLICAS]]  a Redis Cluster (3 masters,
#                       0 replicas each by default); sets CLUSTER_PORTS
#                       (masters first), CLUSTER_PIDS (port -> pid) and
#                       REDIS_URL=redis+cluster://127.0.0.1:FIRST
#   start_postgres      sets PG_PORT DATABASE_URL PG_DIR (initdb as postgres)
#   stop_postgres / restart_postgres
#   on_exit CMD         adds CMD to the exit trap (LIFO)
#   wait_until SECONDS CMD...   polls CMD every 20 ms; 0 when it succeeded
#   rcli ARGS           redis-cli against $REDIS_PORT
#   start_fake NAME CMD...  a fake service that prints its port first;
#                       sets NAME (base URL) and NAME_PID

: "${BUILD:=build}"
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$TOP/$BUILD
FREEPORT=$BIN/tests/tools/freeport

_exit_cmds=()
on_exit() { _exit_cmds=("$*" "${_exit_cmds[@]}"); }
_run_exit() {
	local c
	for c in "${_exit_cmds[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}
trap _run_exit EXIT
trap 'exit 130' INT TERM

t_tmpdir() {
	T=$(mktemp -d /tmp/wakeq-test.XXXXXX)
	chmod 755 "$T"
	on_exit "rm -rf '$T'"
}

# kill_wait PID [SIG]: signal a process we started and reap it.
kill_wait() {
	local pid=$1 sig=${2:-TERM} i
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

start_redis() {
	[ -n "${T:-}" ] || t_tmpdir
	REDIS_PORT=$($FREEPORT)
	mkdir -p "$T/redis"
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
	export REDIS_URL REDIS_PORT
	_redis_start
}

# redis-server on $REDIS_PORT, data and log in $T/redis; sets REDIS_PID
# and waits until it answers.
_redis_start() {
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$T/redis" \
		--save '' --appendonly no --daemonize no --loglevel warning \
		--logfile "$T/redis/log" &
	REDIS_PID=$!
	on_exit "kill_wait $REDIS_PID"
	wait_redis
}

# START_S: how long a server or process a test starts may take to come up
# (a clock's time, not a count of polls: on a loaded machine a poll itself
# takes long). Generous, since it is waited out only on a failure.
START_S=${START_S:-30}

# wait_until SECONDS CMD...: polls CMD every 20 ms; 0 when it succeeded.
wait_until() {
	local limit=$1 end
	shift
	end=$(($(date +%s%N) + ${limit%.*} * 1000000000))
	while :; do
		"$@" && return 0
		[ "$(date +%s%N)" -ge "$end" ] && return 1
		sleep 0.02
	done
}

_pong() { redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
wait_redis() {
	wait_until "$START_S" _pong && return 0
	echo "redis did not start on port $REDIS_PORT" >&2
	return 1
}

stop_redis() { kill_wait "$REDIS_PID"; }

restart_redis() { _redis_start; }

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# start_fake NAME CMD ARGS...: runs a fake service (tests/tools/wakestub,
# fakegcp, ...) that prints the port it listens on as its first line; sets
# NAME to its base URL and NAME_PID. Its stderr goes to $T/name.log (name
# lowercased), appended to across restarts.
start_fake() {
	local name=$1 file pid
	shift
	file=$T/${name,,}
	# the shell of `&` may truncate the file after the wait below looked:
	# a former run's port must not be there to be seen
	rm -f "$file.port"
	"$@" >"$file.port" 2>>"$file.log" &
	pid=$!
	on_exit "kill_wait $pid"
	if ! wait_until "$START_S" test -s "$file.port"; then
		echo "# $name did not start"
		diag "$file.log"
		exit 1
	fi
	eval "${name}_PID=$pid ${name}=http://127.0.0.1:$(head -1 "$file.port")"
}

# One node of a test cluster on port $1 (fast failure detection: 1 s);
# its bus on a free port of its own (the default, port + 10000, may be
# taken or past 65535).
_cluster_node() {
	local port=$1 dir=$T/cluster/$1
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
		--cluster-enabled yes --cluster-port "$($FREEPORT)" --cluster-config-file nodes.conf \
		--cluster-node-timeout 1000 --save '' --appendonly no \
		--daemonize no --loglevel warning --logfile "$dir/log" &
	CLUSTER_PIDS[$port]=$!
	on_exit "kill_wait ${CLUSTER_PIDS[$port]}"
}

_cluster_ok() {
	local p
	for p in "${CLUSTER_PORTS[@]}"; do
		redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
	done
}
_cluster_replicas() { [ "$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster nodes | grep -c ' slave ')" -ge "$1" ]; }

declare -A CLUSTER_PIDS
start_redis_cluster() {
	local masters=${1:-3} replicas=${2:-0} n i p addrs=()
	[ -n "${T:-}" ] || t_tmpdir
	n=$((masters * (1 + replicas)))
	CLUSTER_PORTS=()
	for i in $(seq 1 "$n"); do
		p=$($FREEPORT)
		CLUSTER_PORTS+=("$p")
		_cluster_node "$p"
	done
	for p in "${CLUSTER_PORTS[@]}"; do
		REDIS_PORT=$p wait_redis || return 1
		addrs+=("127.0.0.1:$p")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" \
		--cluster-yes >"$T/cluster/create.log" 2>&1 || {
		cat "$T/cluster/create.log" >&2
		return 1
	}
	# ready: every node sees the cluster ok and every slot served, and
	# every replica attached to its master
	wait_until 15 _cluster_ok || { echo "redis cluster did not come up" >&2; return 1; }
	wait_until 15 _cluster_replicas $((masters * replicas))
	REDIS_PORT=${CLUSTER_PORTS[0]}
	REDIS_URL="redis+cluster://127.0.0.1:$REDIS_PORT"
	export REDIS_URL REDIS_PORT
}

# cluster_owner KEY: the port of the master serving KEY's slot.
cluster_owner() {
	local slot
	slot=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster keyslot "$1")
	redis-cli -p "${CLUSTER_PORTS[0]}" --json cluster slots 2>/dev/null |
		python3 -c 'import json,sys; s=int(sys.argv[1]); print(next(e[2][1] for e in json.load(sys.stdin) if e[0]<=s<=e[1]))' "$slot"
}

pg_bin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
	echo "postgres server binaries not found (install postgresql)" >&2
	return 1
}

start_postgres() {
	[ -n "${T:-}" ] || t_tmpdir
	local bin
	bin=$(pg_bin) || return 1
	PG_PORT=$($FREEPORT)
	PG_DIR=$T/pg
	mkdir -p "$PG_DIR"
	chown postgres "$PG_DIR"
	runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -A trust -U wakeq \
		--no-sync >"$T/pg-initdb.log" 2>&1 || { cat "$T/pg-initdb.log" >&2; return 1; }
	_pg_start
	DATABASE_URL="postgresql://wakeq@127.0.0.1:$PG_PORT/postgres"
	export DATABASE_URL PG_PORT
}

_pg_start() {
	local bin
	bin=$(pg_bin)
	runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
		-o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" \
		start >/dev/null || { cat "$PG_DIR/log" >&2; return 1; }
	on_exit "runuser -u postgres -- '$bin/pg_ctl' -D '$PG_DIR/data' -m immediate stop"
}

stop_postgres() {
	runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
}
restart_postgres() { _pg_start; }
