#!/usr/bin/env bash
# make demo: the whole path on this machine. Starts a local redis-server and
# Postgres, the API and a worker, posts real media jobs (probe, thumbnail,
# transcode of a clip made here) and a job of a custom type run by a short
# Python script (docs/examples/handlers/wordcount.py, declared in a handler
# registry both services read), follows them to their results, and shows
# the worker exiting on its own once idle.
set -u
cd "$(dirname "$0")/.."
. tests/lib/servers.sh
. tests/lib/tap.sh
. tests/lib/wakeq.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

t_tmpdir
say "starting redis-server and postgres on free loopback ports (in $T)"
start_redis || die "redis-server did not start"
start_postgres || die "postgres did not start"
echo "REDIS_URL=$REDIS_URL"
echo "DATABASE_URL=$DATABASE_URL"

DATA=$T/data
mkdir -p "$DATA/in" "$DATA/out"
say "making a 10 s 640x360 test clip with wakeq's own encoder"
"$BIN/tests/tools/mkmedia" "$DATA/in/clip.mp4" -d 10 -s 640x360 -r 25 || die "mkmedia failed"
ls -l "$DATA/in/clip.mp4"

say "your own code as a job type: text.wordcount runs docs/examples/handlers/wordcount.py"
PY=$(command -v python3) || die "python3 is needed for the custom handler"
cat >"$T/handlers.json" <<EOF
{
  "handlers": {
    "text.wordcount": {
      "command": ["$PY", "$PWD/docs/examples/handlers/wordcount.py"],
      "timeout_s": 30,
      "retry_exit_codes": [75],
      "schema": {"type": "object", "required": ["text"],
                 "properties": {"text": {"type": "string"}}}
    }
  }
}
EOF
echo "HANDLERS_FILE=$T/handlers.json (read by the API and the worker):"
cat "$T/handlers.json"
echo "the handler: payload JSON on stdin, result JSON on stdout, progress on fd 3:"
sed -n '/^def main/,/^    return 0/p' docs/examples/handlers/wordcount.py
export HANDLERS_FILE=$T/handlers.json

WPORT=$($FREEPORT)
APORT=$($FREEPORT)
TOKEN=demo-token-$RANDOM
say "starting wakeq-api on :$APORT (it wakes the worker at :$WPORT/wake when none is live)"
env PORT="$APORT" REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" API_TOKEN="$TOKEN" \
	WAKE_URL="http://127.0.0.1:$WPORT/wake" "$BIN/wakeq-api" >"$T/api.log" 2>&1 &
APID=$!
on_exit "kill_wait $APID"
wait_until "$START_S" curl -fs "http://127.0.0.1:$APORT/healthz" >/dev/null || { cat "$T/api.log"; die "api did not start"; }

# On Cloud Run the platform starts the worker when the wake call arrives;
# here it is started just before, with nothing to do until woken.
say "starting wakeq-worker on :$WPORT (IDLE_TIMEOUT=3: it exits 3 s after its work is done)"
env PORT="$WPORT" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" \
	DATA_DIR="$DATA" IDLE_TIMEOUT=3 CONCURRENCY=2 "$BIN/wakeq-worker" >"$T/worker.log" 2>&1 &
WPID=$!
on_exit "kill_wait $WPID"
wait_until "$START_S" curl -fs "http://127.0.0.1:$WPORT/healthz" >/dev/null || die "worker did not start"

post() {
	curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d "$1" "http://127.0.0.1:$APORT/v1/jobs" | jq -r .id
}
say "POST /v1/jobs: probe, thumbnail at 4.5 s, transcode to 320x180 H.264/AAC MP4"
P=$(post '{"type":"media.probe","payload":{"input":"file://in/clip.mp4"}}')
H=$(post '{"type":"media.thumbnail","payload":{"input":"file://in/clip.mp4","output":"file://out/thumb.jpg","at_s":4.5,"width":320}}')
X=$(post '{"type":"media.transcode","payload":{"input":"file://in/clip.mp4","output":"file://out/small.mp4","container":"mp4","video":{"codec":"h264","width":320,"preset":"veryfast"},"audio":{"codec":"aac"}}}')
say "POST /v1/jobs: and one text.wordcount job, next to the media jobs"
C=$(post '{"type":"text.wordcount","payload":{"text":"the worker runs your own program as a job"}}')
[ -n "$P" ] && [ -n "$H" ] && [ -n "$X" ] && [ -n "$C" ] || { cat "$T/api.log"; die "POST /v1/jobs failed"; }
echo "jobs: probe=$P thumbnail=$H transcode=$X wordcount=$C"

job() { curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$APORT/v1/jobs/$1"; }
final() { case "$(job "$1" | jq -r .status)" in done|failed|cancelled) return 0 ;; esac; return 1; }
say "following the jobs until they finish"
for id in $P $H $X $C; do
	wait_until 120 final "$id" || die "job $id did not finish"
done
for id in $P $H $X $C; do
	job "$id" | jq -c '{type, status, attempts, progress, result, error}'
done
ls -l "$DATA/out"

say "the same jobs as Postgres records them"
psql -X -q "$DATABASE_URL" -c "select type, status, attempts, progress, started_at is not null as started, finished_at - created_at as took from jobs order by created_at"

say "waiting for the idle worker to exit on its own"
t0=$(date +%s)
wait_until 20 exited "$WPID" || die "worker did not exit"
wait "$WPID"
rc=$?
echo "worker exited with status $rc, $(( $(date +%s) - t0 )) s after the last job; it costs nothing until the next wake"
grep -E "drain (started|ended)|idle, exiting" "$T/worker.log"
ok=0
for id in $P $H $X $C; do [ "$(job "$id" | jq -r .status)" = done ] || ok=1; done
[ $ok = 0 ] && [ $rc = 0 ] || die "something did not finish as it should"
say "demo done: API -> wake -> worker -> results (media and your own handler), and the worker scaled to zero"
