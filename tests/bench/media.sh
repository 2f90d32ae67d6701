#!/usr/bin/env bash
# media.sh - wakeq's media work against Debian's ffmpeg/ffprobe tools on
# the same generated 60 s 1280x720 30 fps clip (H.264 + AAC), in the same
# run: transcode to H.264/AAC MP4 (same preset and CRF, faststart),
# thumbnail at 30 s, probe. wakeq runs through build/tests/tools/mediatool,
# which does the work as the worker does: in a forked child under resource
# limits (the child and the tool's own start-up included in the time).
#
#   tests/bench/media.sh            figures into docs/BENCHMARKS.md
#   RUNS=1 NOWRITE=1 tests/bench/media.sh   quick look, nothing written
#
# Targets (issues 4, 14): wall-time ratio wakeq/ffmpeg <= 1.0 for
# transcode, thumbnail and probe; a warm thumbnail in the isolated child
# within 2 % of the same work in-process. Medians of interleaved runs.
set -eu
. "$(dirname "$0")/../lib/bench.sh"
RUNS=${RUNS:-5}        # transcode runs per side
QRUNS=${QRUNS:-15}     # thumbnail and probe runs per side
PRESET=${PRESET:-medium}
CRF=${CRF:-23}
MK=$BUILD/tests/tools/mkmedia
TOOL=$BUILD/tests/tools/mediatool
bench_need "$MK" "$TOOL"
command -v ffmpeg >/dev/null || { echo "media.sh: ffmpeg missing" >&2; exit 1; }

tmp=$(mktemp -d /tmp/wakeq-bench-media.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
clip=$tmp/clip.mp4

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

load0=$(cut -d' ' -f1 /proc/loadavg)
echo "# generating the 60 s 1280x720 clip" >&2
t0=$(now_ms)
"$MK" "$clip" -d 60 -s 1280x720 -r 30 -p veryfast
echo "# clip: $(stat -c %s "$clip") bytes in $(( $(now_ms) - t0 )) ms" >&2

# timed NAME CMD...: appends wall ms to $tmp/NAME.ms and, via GNU time,
# the peak RSS (KB) of the process tree's largest process to NAME.rss.
timed() {
	local name=$1; shift
	local t0 t1
	t0=$(now_ms)
	/usr/bin/time -f '%M %U %S' -o "$tmp/rss.tmp" "$@" >/dev/null 2>"$tmp/err.tmp" || {
		echo "media.sh: failed: $*" >&2; cat "$tmp/err.tmp" >&2; exit 1; }
	t1=$(now_ms)
	echo $((t1 - t0)) >>"$tmp/$name.ms"
	awk '{print $1}' "$tmp/rss.tmp" >>"$tmp/$name.rss"
	awk '{printf "%d\n", ($2 + $3) * 1000}' "$tmp/rss.tmp" >>"$tmp/$name.cpu"
}

ff_transcode=(ffmpeg -nostdin -y -v error -i "$clip" -c:v libx264
	-preset "$PRESET" -crf "$CRF" -pix_fmt yuv420p -c:a aac -b:a 128k
	-movflags +faststart "$tmp/ff.mp4")

echo "# transcode x$RUNS, thumbnail and probe x$QRUNS (interleaved)" >&2
for _ in $(seq "$RUNS"); do
	timed wq_transcode "$TOOL" transcode "$clip" "$tmp/wq.mp4" "$PRESET" "$CRF"
	timed ff_transcode "${ff_transcode[@]}"
done
for _ in $(seq "$QRUNS"); do
	timed wq_thumb "$TOOL" thumb "$clip" "$tmp/wq.jpg" 30
	timed ff_thumb ffmpeg -nostdin -y -v error -ss 30 -i "$clip" -frames:v 1 -q:v 2 "$tmp/ff.jpg"
	timed wq_probe "$TOOL" probe "$clip"
	timed ff_probe ffprobe -v error -show_format -show_streams -of json "$clip"
done
fork=$("$TOOL" forkcost 200)
# Warm (issue 14): a worker's media jobs after its first run in the slot's
# reused child; WARM rounds of N thumbnails in one process, isolated and
# in-process (-i) alternating; per round the median of the runs after the
# first, then the median of the rounds.
WARM=${WARM:-3}
echo "# warm thumbnails: $WARM rounds of $QRUNS, isolated and in-process" >&2
for _ in $(seq "$WARM"); do
	"$TOOL" -n $((QRUNS + 1)) thumb "$clip" "$tmp/wq.jpg" 30 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/' >>"$tmp/warm_iso.ms"
	"$TOOL" -i -n $((QRUNS + 1)) thumb "$clip" "$tmp/wq.jpg" 30 | sed 's/.*"median_ms":\([0-9.]*\).*/\1/' >>"$tmp/warm_in.ms"
done
load1=$(cut -d' ' -f1 /proc/loadavg)

# Both outputs re-probed: same codecs, same duration.
check=$(for f in wq ff; do
	ffprobe -v error -show_entries stream=codec_name:format=duration \
		-of csv=p=0 "$tmp/$f.mp4" | tr '\n' ' '; echo; done)

m() { median <"$tmp/$1.ms"; }
# Median of the per-pair ratios (run i of wakeq over run i of ffmpeg):
# less sensitive to load that comes and goes during the run.
pr() { paste "$tmp/wq_$1.ms" "$tmp/ff_$1.ms" | awk '{printf "%.3f\n", $1 / $2}' | median; }
c() { median <"$tmp/$1.cpu"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
rss_wq=$(sort -n "$tmp/wq_transcode.rss" | tail -1)
rss_ff=$(sort -n "$tmp/ff_transcode.rss" | tail -1)
size_wq=$(stat -c %s "$tmp/wq.mp4")
size_ff=$(stat -c %s "$tmp/ff.mp4")
fork_med=$(echo "$fork" | sed 's/.*"median_us":\([0-9]*\).*/\1/')
fork_p90=$(echo "$fork" | sed 's/.*"p90_us":\([0-9]*\).*/\1/')

row() { # name target wq ff
	local r; r=$(ratio "$3" "$4")
	local ok; ok=$(awk -v r="$r" -v t="$2" 'BEGIN {print (r <= t) ? "yes" : "**no**"}')
	printf '| %s | %s ms | %s ms | %s | ≤ %s | %s |\n' "$1" "$3" "$4" "$r" "$2" "$ok"
}

section=$(cat <<EOT
<!-- bench:media -->
## Media jobs vs the ffmpeg tool

$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),
FFmpeg $(ffmpeg -version | head -1 | awk '{print $3}'). \`tests/bench/media.sh\`
(RUNS=$RUNS, QRUNS=$QRUNS, medians of interleaved runs). Input: a generated
60 s 1280x720 30 fps H.264 + AAC clip (\`mkmedia -d 60 -s 1280x720 -r 30\`).
wakeq runs as \`build/tests/tools/mediatool\`: process start, fork of the
isolated child, the work, the JSON result over the pipe. ffmpeg runs as
\`ffmpeg\` / \`ffprobe\` with the same settings (x264 preset $PRESET, CRF
$CRF, AAC 128 kb/s, faststart; \`-ss 30 -frames:v 1 -q:v 2\`;
\`ffprobe -show_format -show_streams -of json\`).

| work | wakeq | ffmpeg | ratio | target | met |
|---|---|---|---|---|---|
$(row "transcode 720p → H.264/AAC MP4" 1.0 "$(m wq_transcode)" "$(m ff_transcode)")
$(row "thumbnail at 30 s (JPEG)" 1.0 "$(m wq_thumb)" "$(m ff_thumb)")
$(row "probe" 1.0 "$(m wq_probe)" "$(m ff_probe)")
$(row "thumbnail, warm: isolated child vs in-process (ffmpeg column)" 1.02 "$(m warm_iso)" "$(m warm_in)")

- Median of per-pair ratios: transcode $(pr transcode), thumbnail
  $(pr thumb), probe $(pr probe). Load average at start/end: $load0 / $load1
  (other work on the machine skews wall times; compare with CPU time).
- CPU time (user + sys, medians), less sensitive than wall time to other
  work on the same 2 cores: transcode $(c wq_transcode) vs $(c ff_transcode) ms
  ($(ratio "$(c wq_transcode)" "$(c ff_transcode)")), thumbnail $(c wq_thumb) vs $(c ff_thumb) ms
  ($(ratio "$(c wq_thumb)" "$(c ff_thumb)")), probe $(c wq_probe) vs $(c ff_probe) ms
  ($(ratio "$(c wq_probe)" "$(c ff_probe)")).
- Peak RSS during the 720p transcode: wakeq $((rss_wq / 1024)) MiB (the
  largest process of the tree: the decoder child), ffmpeg $((rss_ff / 1024)) MiB.
- Output: wakeq $size_wq bytes, ffmpeg $size_ff bytes; re-probed
  (codecs, duration): \`$(echo "$check" | head -1)\` vs \`$(echo "$check" | tail -1)\`.
- Fork cost of the isolation (an empty isolated call: fork, limits, pipe,
  exit, wait) from a process with the FFmpeg libraries loaded: median
  $fork_med µs, p90 $fork_p90 µs over 200 calls. The worker's media jobs
  no longer pay it but for a slot's first (\`media_isolate_copy\`: one child
  per slot thread, reused job after job, replaced after a crash).
- Warm row: \`mediatool -n $((QRUNS + 1)) thumb\` (the runs after the first: the
  reused child) against \`mediatool -i -n $((QRUNS + 1)) thumb\` (the same work in
  the process itself), $WARM alternating rounds, median of the rounds'
  medians; the target is the isolation's cost, ≤ 2 %. ffmpeg's CLI pays a
  process start per thumbnail: $(m ff_thumb) ms above.
<!-- /bench:media -->
EOT
)
echo "$section"
[ "${NOWRITE:-0}" = 1 ] && exit 0
printf '%s\n' "$section" >"$tmp/section"
bench_write media "$tmp/section"
