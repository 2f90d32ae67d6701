#!/usr/bin/env bash
# The queue against hiredis 1.x with TLS: Debian bookworm ships hiredis 0.14
# (no TLS), so this fetches the hiredis 1.2 sources bundled in an npm
# package (redis-fast-driver 2.2.6) into a cache, builds them with
# hiredis_ssl, builds wakeq against them (warnings are errors), runs the
# queue unit tests and talks rediss:// to a TLS redis-server with a
# certificate made here (refused for another host name or without its
# CA): the CLI, and the API with a password (its pool
# and its event subscriber: a job's event stream must see the updates a
# worker publishes). Fails loudly when any step cannot run.
set -u
. "$(dirname "$0")/../lib/test.sh"
CACHE=${WAKEQ_CACHE:-/var/cache/wakeq}/hiredis-1.2
H=$CACHE/root
if [ ! -f "$H/ok" ]; then
	rm -rf "$CACHE" && mkdir -p "$CACHE/src"
	(cd "$CACHE" && timeout 180 npm pack --silent redis-fast-driver@2.2.6 >/dev/null 2>"$T/npm.log") ||
		{ not_ok "fetch the hiredis 1.2 sources (npm pack redis-fast-driver)"; diag "$T/npm.log"; exit 1; }
	tar xzf "$CACHE"/redis-fast-driver-2.2.6.tgz -C "$CACHE/src"
	src=$CACHE/src/package/deps/hiredis
	grep -q 'HIREDIS_MAJOR 1' "$src/hiredis.h" || { not_ok "bundled hiredis is 1.x"; exit 1; }
	mkdir -p "$H/lib" "$H/include/hiredis"
	if ! (cd "$src" && env -u LIBRARY_PATH make -j2 USE_SSL=1 >"$T/hiredis.log" 2>&1); then
		not_ok "build hiredis 1.2 with TLS"; diag "$T/hiredis.log"; exit 1
	fi
	cp "$src"/libhiredis.a "$src"/libhiredis_ssl.a "$H/lib/"
	cp "$src"/*.h "$H/include/hiredis/"
	mkdir -p "$H/include/hiredis/adapters" && cp "$src"/adapters/*.h "$H/include/hiredis/adapters/"
	touch "$H/ok"
fi
mkdir -p "$T/pc"
cat >"$T/pc/hiredis.pc" <<PC
Name: hiredis
Description: hiredis 1.2 (test build)
Version: 1.2.0
Libs: $H/lib/libhiredis.a
Cflags: -I$H/include/hiredis -I$H/include
PC
cat >"$T/pc/hiredis_ssl.pc" <<PC
Name: hiredis_ssl
Description: hiredis_ssl 1.2 (test build)
Version: 1.2.0
Libs: $H/lib/libhiredis_ssl.a -lssl -lcrypto
Cflags: -I$H/include/hiredis
PC
B=build-hiredis1
if (cd "$TOP" && PKG_CONFIG_PATH=$T/pc make -j2 BUILD=$B $B/wakeq $B/wakeq-api \
	$B/tests/unit/queue/test_queue $B/tests/unit/queue/test_conn \
	>"$T/build.log" 2>&1); then
	ok "wakeq builds warning-free against hiredis 1.2 with hiredis_ssl"
else
	not_ok "wakeq builds warning-free against hiredis 1.2 with hiredis_ssl"
	grep -E 'error|warning' "$T/build.log" | head -20 | sed 's/^/# /'
	exit 1
fi
check "the TLS code path was compiled in" sh -c "nm '$TOP/$B/wakeq-api' | grep -q redisInitiateSSLWithContext"

start_redis
out=$(UNIT_REDIS_URL=$REDIS_URL "$TOP/$B/tests/unit/queue/test_queue" 2>&1); rc=$?
check "queue unit tests pass on hiredis 1.2 ($(echo "$out" | grep -c 'OK \]') ok)" \
	sh -c "[ $rc = 0 ] && ! echo '$out' | grep -q 'FAILED'"

# A TLS redis-server with a CA and a certificate for 127.0.0.1 made here.
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
	-subj "/CN=wakeq-test-ca" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout r.key -out r.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >ext
openssl x509 -req -in r.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out r.crt -days 2 \
	-extfile ext 2>/dev/null
TP=$($FREEPORT)
redis-server --port 0 --tls-port "$TP" --bind 127.0.0.1 --tls-cert-file r.crt --tls-key-file r.key \
	--tls-ca-cert-file ca.crt --tls-auth-clients no --save '' --dir "$T" --daemonize no \
	--loglevel warning >"$T/tls.log" 2>&1 &
tpid=$!
on_exit "kill_wait $tpid"
wait_until 5 sh -c "redis-cli --tls --cacert ca.crt -p $TP ping 2>/dev/null | grep -q PONG" ||
	{ not_ok "a TLS redis-server starts"; diag "$T/tls.log"; exit 1; }
id=$(REDIS_TLS_CA_FILE=$T/ca.crt REDIS_URL=rediss://127.0.0.1:$TP "$TOP/$B/wakeq" enqueue noop 2>"$T/enq.err")
check "enqueue over rediss:// ($id)" sh -c "echo '$id' | grep -qE '^[0-9a-f-]{36}$'"
expect_eq "the job is in the TLS server" 1 "$(redis-cli --tls --cacert ca.crt -p "$TP" zcard 'wakeq:{default}:pending')"
msg=$(REDIS_URL=rediss://127.0.0.1:$TP "$TOP/$B/wakeq" stats 2>&1)
check "an untrusted server certificate is refused ($msg)" contains "$msg" "certificate verify failed"
# The certificate names 127.0.0.1 only: the right CA for another host name
# is no better (hiredis's own TLS context checks no host name).
msg=$(REDIS_TLS_CA_FILE=$T/ca.crt REDIS_URL=rediss://localhost:$TP "$TOP/$B/wakeq" stats 2>&1)
check "a certificate for another host name is refused ($msg)" contains "$msg" \
	"certificate verify failed: hostname mismatch"

# The API over rediss:// with an ACL user and password. A second server
# also listens in plain text (same data), where qdrive from the default
# build plays the worker: the API itself only speaks TLS, and its event
# subscriber must too (it once sent AUTH in clear to the TLS port and never
# got an event).
PW='p@ss:w/rd'
PWQ='p%40ss%3Aw%2Frd'
PP=$($FREEPORT)
TP2=$($FREEPORT)
mkdir -p "$T/r2"
redis-server --port "$PP" --tls-port "$TP2" --bind 127.0.0.1 --tls-cert-file "$T/r.crt" \
	--tls-key-file "$T/r.key" --tls-ca-cert-file "$T/ca.crt" --tls-auth-clients no --save '' \
	--dir "$T/r2" --daemonize no --loglevel warning --user default off \
	--user wq on ">$PW" '~*' '&*' '+@all' >"$T/tls2.log" 2>&1 &
t2pid=$!
on_exit "kill_wait $t2pid"
wait_until 5 sh -c "redis-cli -p $PP --user wq --pass '$PW' ping 2>/dev/null | grep -q PONG" ||
	{ not_ok "a TLS redis-server with a password starts"; diag "$T/tls2.log"; exit 1; }
API_PORT=$($FREEPORT)
API=http://127.0.0.1:$API_PORT
H="Authorization: Bearer tls-token"
env PORT=$API_PORT API_TOKEN=tls-token RECONCILE_INTERVAL=0 REDIS_TLS_CA_FILE=$T/ca.crt \
	REDIS_URL="rediss://wq:$PWQ@127.0.0.1:$TP2" "$TOP/$B/wakeq-api" >"$T/api.log" 2>&1 &
apid=$!
on_exit "kill_wait $apid"
wait_until "$START_S" curl -sf -o /dev/null "$API/healthz" || { not_ok "the API starts on rediss://"; diag "$T/api.log"; exit 1; }
EID=$(curl -s -H "$H" -H 'Content-Type: application/json' -d '{"type":"noop"}' "$API/v1/jobs" | jq -r .id)
check "the API enqueues over rediss:// with a password ($EID)" sh -c "echo '$EID' | grep -qE '^[0-9a-f-]{36}$'"
curl -sN -H "$H" "$API/v1/jobs/$EID/events" >"$T/sse.txt" &
sse=$!
on_exit "kill_wait $sse"
sleep 0.3
"$BIN/tests/tools/qdrive" "redis://wq:$PWQ@127.0.0.1:$PP" default run 3 50 >"$T/qd.out" 2>&1
wait_until 5 grep -q '^event: end' "$T/sse.txt"
expect_eq "SSE over rediss:// starts with the state" "event: state" "$(grep -m1 '^event: ' "$T/sse.txt")"
expect_eq "SSE over rediss:// has the 3 progress updates" 3 "$(grep -A1 '^event: update' "$T/sse.txt" | grep -c '"stage":"step-')"
expect_eq "SSE over rediss:// ends with the done job" "done true" \
	"$(grep -A1 '^event: end' "$T/sse.txt" | sed -n 's/^data: //p' | jq -r '"\(.status) \(.result.ok)"')"
grep -q '^event: end' "$T/sse.txt" || { diag "$T/api.log"; diag "$T/qd.out"; }

# The same handshake, unit by unit: queue connection and subscriber over
# TLS with the password.
out=$(UNIT_REDIS_URL=$REDIS_URL UNIT_TLS_REDIS_URL="rediss://wq:$PWQ@127.0.0.1:$TP2" \
	REDIS_TLS_CA_FILE=$T/ca.crt "$TOP/$B/tests/unit/queue/test_conn" 2>&1)
expect_eq "queue and subscriber over TLS with a password (test_conn: ok, skipped)" "4 0" \
	"$(grep -c '^\[       OK \]' <<<"$out") $(grep -c '^\[  SKIPPED \]' <<<"$out")"
grep -q '^\[  PASSED  \] 4 test' <<<"$out" || diag <<<"$out"
exit 0
