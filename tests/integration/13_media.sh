#!/usr/bin/env bash
# Media jobs through the real worker: the FFmpeg plugin loads on the first
# media job, results are real, a crashing decoder fails its job and not the
# worker, and a worker without the plugin says so.
set -u
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/wakeq.sh"
t_tmpdir
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
start_worker m5 QUEUES=noabi DATA_DIR="$D" IDLE_TIMEOUT=1 WAKEQ_MEDIA_PLUGIN="$BIN/tests/plugins/noabi.so"
curl -fs -XPOST "$m5_URL/wake" >/dev/null
check "a media plugin without the ABI symbol is refused" \
	contains "$(wq status --queue noabi "$n" | jq -r .error)" "is not a wakeq handler plugin: no symbol 'wakeq_handler_abi_version'"
exit 0
