#!/usr/bin/env bash
# 06_network - a slow, a lossy and a cut network between two workers and
# Redis. Everything runs in two network namespaces this test creates and
# deletes: "r" holds Redis, the API, one near worker and a hitcount; "w"
# holds two far workers and a hitcount on the same port (both counters log
# to one file, each under its own name), joined to "r" by a veth pair with
# addresses assigned inside those namespaces only. Faults, on the veth:
#   slow       latency each way (tc netem; where the kernel has no netem,
#              the far workers reach Redis through lagproxy, a relay in
#              "r" that delays every byte the same way);
#   lossy      random packet loss (tc netem, else iptables statistic);
#   partition  every packet dropped for longer than LEASE (iptables).
# The near worker takes over the far workers' jobs once their leases
# expire; the far workers' late results are fenced off; when the network
# heals they carry on. Jobs a far worker held during a fault, or up to
# LEASE + 1 s after it (retransmissions outlast it), count as in flight. Skipped, with a message, where namespaces cannot be
# made.
cd "$(dirname "$0")/../.."
. tests/chaos/lib.sh
chaos_init network

NSR=wqcr$$ NSW=wqcw$$ VR=wqr$$ VW=wqw$$
AR=10.211.7.1 AW=10.211.7.2
if ! ip netns add "$NSR" 2>"$T/ns.err"; then
	echo "# skip: cannot create a network namespace here ($(head -1 "$T/ns.err"))"
	exit 0
fi
on_exit "ip netns del $NSR"
ip netns add "$NSW" && on_exit "ip netns del $NSW"
nsr() { ip netns exec "$NSR" "$@"; }
nsw() { ip netns exec "$NSW" "$@"; }
if ! ip link add "$VR" netns "$NSR" type veth peer name "$VW" netns "$NSW" 2>"$T/ns.err"; then
	echo "# skip: cannot create a veth pair here ($(head -1 "$T/ns.err"))"
	exit 0
fi
nsr ip addr add $AR/30 dev "$VR"
nsw ip addr add $AW/30 dev "$VW"
nsr ip link set lo up
nsw ip link set lo up
nsr ip link set "$VR" up
nsw ip link set "$VW" up

# netem where the kernel has it; lagproxy and iptables otherwise
NETEM=0
if nsw tc qdisc add dev "$VW" root netem delay 1ms 2>/dev/null; then
	NETEM=1
	nsw tc qdisc del dev "$VW" root
fi
echo "# network faults by $([ $NETEM = 1 ] && echo "tc netem" || echo "lagproxy (latency) and iptables (loss): this kernel has no netem")"

rcli() { nsr redis-cli -p 6379 "$@"; }
REDIS_PORT=6379
REDIS_URL=redis://127.0.0.1:6379
mkdir -p "$T/redis"
ip netns exec "$NSR" redis-server --port 6379 --bind 127.0.0.1 $AR --protected-mode no --dir "$T/redis" \
	--save '' --appendonly yes --appendfsync always --daemonize no \
	--loglevel warning --logfile "$T/redis/log" &
REDIS_PID=$!
on_exit "kill_wait $REDIS_PID"
wait_until 5 sh -c "ip netns exec $NSR redis-cli -p 6379 ping 2>/dev/null | grep -q PONG" ||
	{ not_ok "redis did not start in the namespace"; exit 1; }
FAR_REDIS=redis://$AR:6379
if [ $NETEM = 0 ]; then
	ip netns exec "$NSR" "$BIN/tests/tools/lagproxy" $AR:6380 127.0.0.1:6379 "$(pick 40 80)" >"$T/lag.out" 2>&1 &
	LAG_PID=$!
	on_exit "kill_wait $LAG_PID"
	wait_until 5 grep -qs ready "$T/lag.out" || { not_ok "lagproxy did not start"; exit 1; }
	FAR_REDIS=redis://$AR:6380
fi

for ns in r w; do
	[ $ns = r ] && nsn=$NSR || nsn=$NSW
	ip netns exec "$nsn" "$BIN/tests/tools/hitcount" "$HITS" --port 9000 --name $ns >"$T/counter-$ns.port" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid"
done
HIT_URL=http://127.0.0.1:9000/hit
ip netns exec "$NSR" env PORT=8080 HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN=$TOKEN \
	"$BIN/wakeq-api" >>"$T/api.log" 2>&1 &
API_PID=$!
on_exit "kill_wait $API_PID"
API=http://127.0.0.1:8080
wait_until 10 nsr curl -sf -o /dev/null "$API/healthz" || { diag "$T/api.log"; exit 1; }

# ns_worker I NS REDIS_URL: worker slot I in namespace NS, port 8080 + I
ns_worker() {
	local i=$1 ns=$2 url=$3 name pid
	name=w${i}g1
	ip netns exec "$ns" env PORT=$((8080 + i)) HOST=127.0.0.1 REDIS_URL="$url" QUEUES=$Q \
		CONCURRENCY="$([ "$i" = 1 ] && echo 8 || echo 4)" LEASE="$LEASE" IDLE_TIMEOUT=3600 EMPTY_WAKE_LINGER=3600 \
		EXIT_ON_IDLE=false ALLOW_PRIVATE_NETWORKS=loopback SHUTDOWN_GRACE=$GRACE \
		WORKER_ID="$name" "$BIN/wakeq-worker" >"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid KILL"
	WPID[$i]=$pid
	WID[$i]=$name
	wait_until 5 ip netns exec "$ns" curl -fs -o /dev/null "http://127.0.0.1:$((8080 + i))/healthz" ||
		{ diag "$T/$name.log"; return 1; }
	ip netns exec "$ns" curl -fs -m 5 -XPOST "http://127.0.0.1:$((8080 + i))/wake?wait=0" >/dev/null
}
ns_worker 1 "$NSR" "$REDIS_URL" || exit 1
ns_worker 2 "$NSW" "$FAR_REDIS" || exit 1
ns_worker 3 "$NSW" "$FAR_REDIS" || exit 1

# The jobs the far workers hold, every 100 ms: "US ID" lines. A slow or
# lossy link delays their renewals and settles during a fault and for a
# while after it (TCP retransmits with backoff), so the jobs they held in
# that time are the ones in flight at it.
far_poll() {
	local t id
	while :; do
		t=$(now_us)
		for id in $(chaos_held "${WID[2]}" "${WID[3]}"); do echo "$t $id"; done
		sleep 0.1
	done >"$T/farheld"
}
far_poll &
POLL_PID=$!
on_exit "kill_wait $POLL_PID"

# KIND:SECONDS[:AMOUNT]
read -ra FAULT <<<"$(pick "slow:3 lossy:3:10 partition:$((LEASE + 2))" \
	"slow:10 lossy:10:10 partition:$((LEASE + 2)) lossy:8:25 partition:1 slow:8 partition:$((LEASE * 3))")"
# a gap before each fault, and load for 6 s after the last one (the far
# workers must find work when the network is back)
gap=$(pick 2 5)
SECS=$(printf '%s\n' "${FAULT[@]}" | awk -F: -v g="$gap" '{ s += $2 + g } END { print int(s + 6) }')
LOAD_EXEC=(ip netns exec "$NSR")
chaos_load_start 20 "$SECS" 100
fw() { nsw iptables -w "$@"; }
far_back_max=0
for f in "${FAULT[@]}"; do
	IFS=: read -r kind d amount <<<"$f"
	sleep "$gap"
	SNAP_US=$(now_us)
	held=$(chaos_held "${WID[2]}" "${WID[3]}")
	t0=$(now_us)
	case $kind in
	slow)
		if [ $NETEM = 1 ]; then
			nsw tc qdisc add dev "$VW" root netem delay "$(pick 40 80)ms"
			nsr tc qdisc add dev "$VR" root netem delay "$(pick 40 80)ms"
		else
			kill -USR1 "$LAG_PID"
		fi ;;
	lossy)
		if [ $NETEM = 1 ]; then
			nsw tc qdisc add dev "$VW" root netem loss "$amount%"
			nsr tc qdisc add dev "$VR" root netem loss "$amount%"
		else
			p=$(awk -v a="$amount" 'BEGIN { printf "%.2f", a / 100 }')
			fw -A INPUT -i "$VW" -m statistic --mode random --probability "$p" -j DROP
			fw -A OUTPUT -o "$VW" -m statistic --mode random --probability "$p" -j DROP
		fi ;;
	partition)
		fw -A INPUT -i "$VW" -j DROP
		fw -A OUTPUT -o "$VW" -j DROP ;;
	esac
	sleep "$d"
	case $kind in
	slow | lossy)
		if [ $NETEM = 1 ]; then
			nsw tc qdisc del dev "$VW" root
			nsr tc qdisc del dev "$VR" root
		fi
		[ -n "${LAG_PID:-}" ] && kill -USR2 "$LAG_PID" ;;
	esac
	fw -F INPUT
	fw -F OUTPUT
	t1=$(now_us)
	# Jobs the far workers held, or started during the fault, were in
	# flight. In a partition Redis keeps its clock: their leases expire
	# during it and the near worker ("r") restarts them, so restarts are
	# timed from the partition's start.
	if [ "$kind" = partition ]; then
		# shellcheck disable=SC2086
		WIN_US=$t1 WIN_BY=w ORIGIN_US=$t0 RESTART_BY=r chaos_fault "net_$kind" "$t0" "$t1" far $held
	else
		# shellcheck disable=SC2086
		WIN_US=$t1 WIN_BY=w chaos_fault "net_$kind" "$t0" "$t1" far $held
	fi
	# how soon the far workers run jobs again once the network is back
	if wait_until 20 sh -c "awk -v t=$t1 '\$1 == \"w\" && \$3 > t { f = 1 } END { exit !f }' '$HITS'"; then
		back=$((($(awk -v t="$t1" '$1 == "w" && $3 > t { print $3; exit }' "$HITS") - t1) / 1000))
		echo "# after $kind $d s: the far workers ran a job again after $back ms"
		[ "$back" -gt "$far_back_max" ] && far_back_max=$back
	else
		not_ok "the far workers ran no job within 20 s after the $kind ended"
	fi
done
chaos_load_wait
kill_wait "$POLL_PID"
# in flight: held by a far worker from the fault's start until LEASE + 1 s
# after its end
awk -v F="$FAULTS" -v tail=$((LEASE_MS * 1000 + 1000000)) '
	BEGIN { while ((getline l < F) > 0) { split(l, f, " "); n++; fi[n] = f[1]; a[n] = f[3]; b[n] = f[4] + tail } }
	{ for (i = 1; i <= n; i++) if ($1 >= a[i] && $1 <= b[i]) print fi[i], $2 }' "$T/farheld" |
	sort -u >>"$INFLIGHT_MORE"
check "every accepted job reached a final state" chaos_settle $((LEASE * 3 + 30))
for i in 2 3; do
	check "far worker ${WID[$i]} is still alive" kill -0 "${WPID[$i]}"
done
stale=$(rcli hget "${P}stats" stale)
echo "# settles refused as stale (fencing): ${stale:-0}"
chaos_audit "\"netem\":$NETEM,\"far_back_max_ms\":$far_back_max,\"fenced\":${stale:-0}"
exit 0
