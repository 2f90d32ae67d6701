#!/usr/bin/env bash
# 24_lazy_libs - the worker starts without libpq and libcurl (issue 14:
# cold start): a noop drain without DATABASE_URL never maps them; the
# first job that needs HTTP loads libcurl then, and runs.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis

mapped() { grep -q "/$2" "/proc/$1/maps"; } # mapped PID LIBNAME-PREFIX

for lib in libpq.so libcurl.so; do
	check "the worker binary does not link $lib" bash -c "! ldd '$BIN/wakeq-worker' | grep -q '$lib'"
done
id=$(wq enqueue noop --queue lazy)
start_worker w1 QUEUES=lazy IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false ALLOW_PRIVATE_NETWORKS=loopback
curl -fs -XPOST "$w1_URL/wake" >/dev/null
expect_eq "a noop job runs" done "$(job_field "$id" status)"
check "after it, libpq is not mapped" bash -c "! grep -q /libpq.so /proc/$w1_PID/maps"
check "nor libcurl" bash -c "! grep -q /libcurl.so /proc/$w1_PID/maps"

# an http.request to a closed loopback port: curl runs, the job fails
# for its own reason (not "cannot start curl")
h=$(wq enqueue http.request --queue lazy --max-attempts 1 --payload '{"url":"http://127.0.0.1:1/x"}')
curl -fs -XPOST "$w1_URL/wake" >/dev/null
st=$(job_field "$h" status)
check "the http.request ran and failed ($st)" contains " failed dead " " $st "
e=$(job_field "$h" error)
check "with curl's own error, not a load failure ($e)" contains "$e" "Failed to connect"
check "libcurl is mapped now" mapped "$w1_PID" libcurl.so
kill_wait "$w1_PID"

# a media job loads libcurl with the plugin, even for a file:// input that
# needs no fetch: no load may run later while a slot forks a decoder
mkdir -p "$T/data/in"
"$BIN/tests/tools/mkmedia" "$T/data/in/clip.mp4" -d 1 -s 64x48 -r 5 >/dev/null 2>&1
m=$(wq enqueue media.probe --queue lazym --payload '{"input":"file://in/clip.mp4"}')
start_worker w3 QUEUES=lazym DATA_DIR="$T/data" IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false
curl -fs -XPOST "$w3_URL/wake" >/dev/null
expect_eq "a media.probe of a file runs" done "$(job_field "$m" status)"
check "and libcurl is mapped after it" mapped "$w3_PID" libcurl.so
kill_wait "$w3_PID"

# a libcurl that cannot be loaded (an empty file found first) is reported
# as such: the job fails for that reason, not for a "bad url"; the API
# with a waker does not start, and says why
mkdir -p "$T/nocurl"
: >"$T/nocurl/libcurl.so.4"
h=$(wq enqueue http.request --queue lazy2 --max-attempts 1 --payload '{"url":"http://127.0.0.1:1/x"}')
start_worker w2 QUEUES=lazy2 IDLE_TIMEOUT=0.3 EXIT_ON_IDLE=false ALLOW_PRIVATE_NETWORKS=loopback \
	LD_LIBRARY_PATH="$T/nocurl"
curl -fs -XPOST "$w2_URL/wake" >/dev/null
e=$(job_field "$h" error)
check "no libcurl: the job says so ($e)" contains "$e" "cannot load 'libcurl.so.4'"
kill_wait "$w2_PID"
out=$(env PORT=0 HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN=t WAKE_URL=http://127.0.0.1:1/wake WAKE_AUTH=none \
	LD_LIBRARY_PATH="$T/nocurl" timeout 10 "$BIN/wakeq-api" 2>&1)
check "nor does the API's waker start ($out)" contains "$out" "cannot load 'libcurl.so.4'"
exit 0
