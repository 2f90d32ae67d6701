#!/usr/bin/env bash
# Media jobs through the real worker: the FFmpeg plugin loads on the first
# media job, results are real, a crashing decoder fails its job and not the
# worker, and a worker without the plugin says so.
set -u
. "$(dirname "$0")/../lib/test.sh"
start_redis
D=$T/data
mkdir -p "$D/in"
"$BIN/tests/tools/mkmedia" "$D/in/clip.mp4" -d 4 -s 320x240 -r 25 >/dev/null 2>&1
check "the test clip was made" test -s "$D/in/clip.mp4"

p=$(wq enqueue media.probe --queue media --payload '{"input":"file://in/clip.mp4"}')
th=$(wq enqueue media.thumbnail --queue media --payload '{"input":"file://in/clip.mp4","output":"file://out/t.png","at_s":2,"width":160,"format":"png"}')
x=$(wq enqueue media.transcode --queue media --payload '{"input":"file://in/clip.mp4","output":"file://out/a.webm","container":"webm","video":{"codec":"vp9","width":160},"audio":{"codec":"opus"},"duration_s":1}')
start_worker m1 QUEUES=media DATA_DIR="$D" IDLE_TIMEOUT=1 CONCURRENCY=2
curl -fs -XPOST "$m1_URL/wake" >/dev/null
expect_eq "probe: duration of the 4 s clip" 4 "$(wq status --queue media "$p" | jq -r '.result.duration_s | round')"
expect_eq "probe: video stream size" "320x240" "$(wq status --queue media "$p" | jq -r '.result.streams[] | select(.type=="video") | "\(.width)x\(.height)"')"
expect_eq "thumbnail: 160x120 PNG written" "done 160 120" "$(wq status --queue media "$th" | jq -r '"\(.status) \(.result.width) \(.result.height)"')"
check "thumbnail file exists" test -s "$D/out/t.png"
expect_eq "transcode: VP9/Opus WebM of 1 s" "done vp9 opus 1" "$(wq status --queue media "$x" | jq -r '"\(.status) \(.result.video.codec) \(.result.audio.codec) \(.result.duration_s | round)"')"
rss=$(awk '/VmHWM/ {print $2}' "/proc/$m1_PID/status" 2>/dev/null || echo 0)
check "the worker stays up after media jobs" kill -0 "$m1_PID"

# A decoder that crashes fails its job, not the worker.
c=$(wq enqueue media.probe --queue crash --payload '{"input":"file://in/clip.mp4"}' --max-attempts 1)
n=$(wq enqueue noop --queue crash)
start_worker m2 QUEUES=crash DATA_DIR="$D" IDLE_TIMEOUT=1 WAKEQ_MEDIA_FAULT=crash
curl -fs -XPOST "$m2_URL/wake" >/dev/null
expect_eq "a crashing decoder fails the job" failed "$(wq status --queue crash "$c" | jq -r .status)"
check "with the signal in the error ($(wq status --queue crash "$c" | jq -r .error))" \
	contains "$(wq status --queue crash "$c" | jq -r .error)" "signal"
expect_eq "the worker carried on with the next job" done "$(wq status --queue crash "$n" | jq -r .status)"

# No plugin: a clear, final error.
e=$(wq enqueue media.probe --queue noplug --payload '{"input":"file://in/clip.mp4"}' --max-attempts 3)
start_worker m3 QUEUES=noplug DATA_DIR="$D" IDLE_TIMEOUT=1 WAKEQ_MEDIA_PLUGIN=/nonexistent/wakeq-media.so
curl -fs -XPOST "$m3_URL/wake" >/dev/null
expect_eq "without the plugin the job fails once, for good" "failed 1" "$(wq status --queue noplug "$e" | jq -r '"\(.status) \(.attempts)"')"
check "saying media support is not installed" contains "$(wq status --queue noplug "$e" | jq -r .error)" "media support is not installed"

# A worker SIGKILLed during a media job: its decoder dies with it at once,
# and the partial output it leaves is removed by the next worker to start
# once it has been untouched for 10 minutes (FETCH_PART_STALE_S).
h=$(wq enqueue media.thumbnail --queue hang --payload '{"input":"file://in/clip.mp4","output":"file://out/h.png","at_s":1}')
start_worker m4 QUEUES=hang DATA_DIR="$D" IDLE_TIMEOUT=30 WAKEQ_MEDIA_FAULT=hang
curl -fs -XPOST "$m4_URL/wake?wait=0" >/dev/null
child=
decoder() { child=$(ps -o pid= --ppid "$m4_PID" | tr -d ' ' | head -1); [ -n "$child" ]; }
check "the hanging decoder runs in a child of the worker" wait_until 10 decoder
[ -n "$child" ] && on_exit "kill_wait $child KILL"
part=$(ls -A "$D/out" | grep '^\.h\.png\.part-' | head -1)
check "its partial output is in DATA_DIR ($part)" test -n "$part"
kill -KILL "$m4_PID"
wait "$m4_PID" 2>/dev/null
t0=$(date +%s%N)
dead() { ! kill -0 "$child" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null)" = Z ]; }
wait_until 5 dead
el=$((($(date +%s%N) - t0) / 1000000))
check "the decoder died with the SIGKILLed worker (${el} ms after)" test "$el" -lt 500
check "the partial output is left behind" test -f "$D/out/$part"
touch -d '-11 minutes' "$D/out/.upload.mp4.part" "$D/out/keep.part-abcdef"
touch "$D/out/.fresh.png.part-Ab12Cd.png"
start_worker m5 QUEUES=none DATA_DIR="$D" IDLE_TIMEOUT=30
sleep 0.5
check "a partial output touched 10 minutes ago or less is kept" test -f "$D/out/$part"
kill_wait "$m5_PID"
touch -d '-11 minutes' "$D/out/$part"
start_worker m6 QUEUES=none DATA_DIR="$D" IDLE_TIMEOUT=30
gone() { ! test -e "$D/out/$part"; }
check "the next worker removes it once untouched for 10 minutes" wait_until 3 gone
check "and says so" wait_until 3 grep -q 'removed stale partial outputs' "$T/m6.log"
check "a fresh partial output is kept" test -f "$D/out/.fresh.png.part-Ab12Cd.png"
check "the API's upload and other names are not touched" \
	test -f "$D/out/.upload.mp4.part" -a -f "$D/out/keep.part-abcdef"
kill_wait "$m6_PID"

# The plugin speaks the handler ABI, checked before use: one of another ABI
# version, or one without the version symbol (as the media plugin was
# before the ABI), fails media jobs at once with that reason.
b=$(wq enqueue media.probe --queue badabi --payload '{"input":"file://in/clip.mp4"}' --max-attempts 3)
start_worker m4 QUEUES=badabi DATA_DIR="$D" IDLE_TIMEOUT=1 EXIT_ON_IDLE=false WAKEQ_MEDIA_PLUGIN="$BIN/tests/plugins/badabi.so"
curl -fs -XPOST "$m4_URL/wake" >/dev/null
expect_eq "a media plugin of another ABI: the job fails once, for good" "failed 1" \
	"$(wq status --queue badabi "$b" | jq -r '"\(.status) \(.attempts)"')"
expect_eq "... naming both ABI versions" \
	"bad media plugin: plugin '$BIN/tests/plugins/badabi.so' was built for handler ABI 999, this worker speaks ABI 1 (rebuild it against wakeq/handler.h)" \
	"$(wq status --queue badabi "$b" | jq -r .error)"
check "... and the worker is still up" kill -0 "$m4_PID"
n=$(wq enqueue media.probe --queue noabi --payload '{"input":"file://in/clip.mp4"}')
start_worker m5 QUEUES=noabi DATA_DIR="$D" IDLE_TIMEOUT=1 EXIT_ON_IDLE=false WAKEQ_MEDIA_PLUGIN="$BIN/tests/plugins/noabi.so"
curl -fs -XPOST "$m5_URL/wake" >/dev/null
check "a media plugin without the ABI symbol is refused" \
	contains "$(wq status --queue noabi "$n" | jq -r .error)" "is not a wakeq handler plugin: no symbol 'wakeq_handler_abi_version'"
exit 0
