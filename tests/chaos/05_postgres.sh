#!/usr/bin/env bash
# 05_postgres - Postgres stopped (fast shutdown, and crashed with an
# immediate shutdown) and frozen (SIGSTOP of the postmaster and its
# backends) under load. Jobs keep running on Redis; every completion
# reaches its row once Postgres is back (the finals log); while Postgres is
# down the API refuses new jobs with JSON 503 + Retry-After and leaves no
# Redis record of them; nothing runs twice.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_start postgres

PGBIN=$(pg_bin)
pg_pids() { # the postmaster and its children: processes this test started
	local pm
	pm=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) || return 0
	echo "$pm" "$(ps -o pid= --ppid "$pm" | tr -s ' \n' ' ')"
}

# KIND:SECONDS; stop = fast shutdown, crash = immediate, freeze = SIGSTOP
read -ra FAULT <<<"$(pick "stop:2 freeze:1.5" "stop:2 freeze:1.5 crash:3 freeze:4 stop:6 freeze:0.5 crash:1 stop:1")"
SECS=$(pick 13 80)
chaos_load_start "$(pick 40 60)" "$SECS" 100
gap=$(chaos_gap "$SECS" "${FAULT[@]#*:}")
outages=()
for f in "${FAULT[@]}"; do
	kind=${f%%:*} d=${f#*:}
	sleep "$gap"
	t0=$(now_us)
	case $kind in
	stop) runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null ;;
	crash) runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null ;;
	freeze) pids=$(pg_pids); kill -STOP $pids ;;
	esac
	t_down=$(now_us)
	sleep "$d"
	case $kind in
	freeze) kill -CONT $pids ;;
	*) restart_postgres || { not_ok "postgres did not start again"; break; } ;;
	esac
	t1=$(now_us)
	chaos_fault "pg_$kind" "$t0" "$t1" postgres
	outages+=("$NFAULT:$kind:$d:$t_down")
done
chaos_load_wait
chaos_recovered 30
lat_max=0
for o in "${outages[@]}"; do
	IFS=: read -r idx kind d t_down <<<"$o"
	read -r n ok u other lat <<<"$(chaos_outage_answers "$idx")"
	echo "# Postgres $kind $d s: $n jobs sent, $ok accepted, $u refused, $other other; slowest answer ${lat} ms"
	check "Postgres $kind $d s: every answer a 202 or a JSON 503 ($other other)" test "$other" = 0
	case $kind in
	stop | crash)
		check "Postgres $kind $d s: the API refused with 503 while it was down ($u)" test "$u" -gt 0 ;;
	esac
	if [ "$kind" = freeze ]; then
		[ "$lat" -gt "$lat_max" ] && lat_max=$lat
		# issue 11: intake fails fast (503) instead of waiting for a
		# frozen Postgres: PG_TIMEOUT (2 s) at most, plus the answer's
		# way (the full run's 4 s freeze took 4 s before the store
		# stopped asking a silent Postgres again on another connection)
		check "Postgres frozen $d s: the API answered within PG_TIMEOUT + 0.5 s (slowest ${lat} ms)" test "$lat" -le 2500
	fi
done
chaos_audit "\"answer_max_ms_while_pg_frozen\":$lat_max"
exit 0
