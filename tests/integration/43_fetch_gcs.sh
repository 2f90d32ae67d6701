#!/usr/bin/env bash
# 43_fetch_gcs.sh - gs:// inputs and outputs and presigned uploads,
# against the fake Cloud Storage of tests/tools/fakegcp (JSON API behind a
# bearer check, V4 HMAC signed URLs checked independently) and its fake
# metadata server, all on loopback:
#   - fetchcp copies through gs:// intact; Cloud Storage's 404/403 reach
#     the message; a token comes from the metadata server, once;
#   - the real worker transcodes a gs:// input into a gs:// output; a
#     missing or forbidden input fails the job (once, not retried) with
#     Cloud Storage's reason; an input over MAX_INPUT_BYTES fails with a
#     clear error and leaves nothing in the worker's TMPDIR;
#   - the real API answers POST /v1/uploads?presign=1 with a signed PUT
#     into UPLOAD_TARGET; curl PUTs the clip straight to the bucket (the
#     fake checks the signature), and a job posted with the answered gs://
#     URL reads it. A wrong content type or a changed signature is
#     refused; a bad UPLOAD_TARGET stops the API at start-up.
set -u
. "$(dirname "$0")/../lib/test.sh"

FETCHCP=$BIN/tests/tools/fetchcp
HMAC_ID=GOOG1EFAKEHMACKEYID
HMAC_SECRET='fake/hmac+secret'
start_gcp --bucket media --deny-bucket locked --hmac-id "$HMAC_ID" --hmac-secret "$HMAC_SECRET"
check "fakegcp started" test -n "${G#http://127.0.0.1:}"
GENV=(GCE_METADATA_HOST="${G#http://}" GCS_ENDPOINT="$G" ALLOW_PRIVATE_NETWORKS=loopback)
objects() { curl -s "$G/fake/objects"; }
obj() { objects | jq -r --arg n "$1" ".objects[] | select(.bucket==\"media\" and .name==\$n) | .$2"; }

# ---- fetchcp: gs:// both ways -------------------------------------------------
head -c 3000000 /dev/urandom >"$T/r3.bin"
check "put gs://media/dir/r 3.bin" env "${GENV[@]}" TMP_DIR="$T" DATA_DIR="$T" \
	"$FETCHCP" put "$T/r3.bin" "gs://media/dir/r 3.bin"
expect_eq "stored intact (sha256 on the fake)" "$(sha256sum "$T/r3.bin" | cut -d' ' -f1)" \
	"$(obj "dir/r 3.bin" sha256)"
expect_eq "stored through the JSON API upload" json "$(obj "dir/r 3.bin" via)"
check "get gs://media/dir/r 3.bin" env "${GENV[@]}" TMP_DIR="$T" DATA_DIR="$T" \
	"$FETCHCP" get "gs://media/dir/r 3.bin" "$T/back.bin"
check "read back intact" cmp -s "$T/r3.bin" "$T/back.bin"
expect_eq "one access token per process and transfer" 2 \
	"$(curl -s "$G/fake/metadata" | jq -r .access_asks)"

out=$(env "${GENV[@]}" TMP_DIR="$T" "$FETCHCP" get "gs://media/missing.mp4" "$T/x" 2>&1)
expect_eq "missing object: Cloud Storage's reason and message" \
	"fetchcp: not_found: gs get 'gs://media/missing.mp4' failed: 404 notFound: No such object: media/missing.mp4" \
	"$out"
out=$(env "${GENV[@]}" TMP_DIR="$T" "$FETCHCP" put "$T/r3.bin" "gs://locked/x.bin" 2>&1)
check "forbidden bucket: 403 forbidden ($out)" contains "$out" \
	"fetchcp: unauthorized: gs put 'gs://locked/x.bin' failed: 403 forbidden: "
out=$(env "${GENV[@]}" GCE_METADATA_HOST=127.0.0.1:1 TMP_DIR="$T" "$FETCHCP" get "gs://media/dir/r 3.bin" "$T/x" 2>&1)
check "no metadata server: a retryable error naming it ($out)" contains "$out" \
	"fetchcp: unavailable: gs get 'gs://media/dir/r 3.bin' failed: cannot get an access token from the metadata server"
out=$(env "${GENV[@]}" TMP_DIR="$T" "$FETCHCP" get "gs://media/" "$T/x" 2>&1)
check "gs://media/ has no object name ($out)" contains "$out" "no object name"
out=$(env "${GENV[@]}" ALLOW_PRIVATE_NETWORKS= TMP_DIR="$T" "$FETCHCP" get "gs://media/dir/r 3.bin" "$T/x" 2>&1)
check "a loopback endpoint is refused without ALLOW_PRIVATE_NETWORKS" contains "$out" \
	"refused address 127.0.0.1"
expect_eq "no temp files left by fetchcp" "" "$(find "$T" -mindepth 1 -maxdepth 1 -name 'wakeq-*')"

# ---- the worker: gs:// in, gs:// out ---------------------------------------------
start_redis
"$BIN/tests/tools/mkmedia" "$T/clip.mp4" -d 4 -s 320x240 -r 25 >/dev/null 2>&1
check "the test clip was made" test -s "$T/clip.mp4"
check "clip uploaded to gs://media/in/clip.mp4" env "${GENV[@]}" TMP_DIR="$T" \
	"$FETCHCP" put "$T/clip.mp4" "gs://media/in/clip.mp4"
head -c 3000000 /dev/urandom >"$T/big.mp4"
check "a 3 MB input uploaded" env "${GENV[@]}" TMP_DIR="$T" \
	"$FETCHCP" put "$T/big.mp4" "gs://media/in/big.mp4"
mkdir -p "$T/wtmp" "$T/data"
x=$(wq enqueue media.transcode --payload '{"input":"gs://media/in/clip.mp4","output":"gs://media/out/a.webm","container":"webm","video":{"codec":"vp9","width":160},"audio":{"codec":"opus"},"duration_s":1}')
m=$(wq enqueue media.probe --payload '{"input":"gs://media/in/missing.mp4"}' --max-attempts 3)
f=$(wq enqueue media.probe --payload '{"input":"gs://locked/in.mp4"}' --max-attempts 3)
b=$(wq enqueue media.probe --payload '{"input":"gs://media/in/big.mp4"}' --max-attempts 3)
start_worker w "${GENV[@]}" TMPDIR="$T/wtmp" DATA_DIR="$T/data" MAX_INPUT_BYTES=2M \
	IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false CONCURRENCY=2 || exit 1
curl -fs -XPOST "$w_URL/wake" >/dev/null
expect_eq "transcode gs:// -> gs:// is done" "done vp9" \
	"$(wq status "$x" | jq -r '"\(.status) \(.result.video.codec)"')"
expect_eq "the output landed in the bucket as WebM" video/webm "$(obj out/a.webm content_type)"
check "env ${GENV[*]} fetchcp get gs://media/out/a.webm" env "${GENV[@]}" TMP_DIR="$T" \
	"$FETCHCP" get "gs://media/out/a.webm" "$T/a.webm"
expect_eq "and it is a WebM file (EBML magic)" 1a45dfa3 "$(head -c 4 "$T/a.webm" | od -An -tx1 | tr -d ' \n')"
expect_eq "missing input: failed at once, not retried" "failed 1" \
	"$(wq status "$m" | jq -r '"\(.status) \(.attempts)"')"
check "... with Cloud Storage's 404 in the job's error ($(wq status "$m" | jq -r .error))" \
	contains "$(wq status "$m" | jq -r .error)" \
	"gs get 'gs://media/in/missing.mp4' failed: 404 notFound: No such object: media/in/missing.mp4"
expect_eq "forbidden input: failed at once" "failed 1" "$(wq status "$f" | jq -r '"\(.status) \(.attempts)"')"
check "... with the 403 in the job's error" contains "$(wq status "$f" | jq -r .error)" \
	"gs get 'gs://locked/in.mp4' failed: 403 forbidden: "
expect_eq "input over MAX_INPUT_BYTES: failed at once" "failed 1" \
	"$(wq status "$b" | jq -r '"\(.status) \(.attempts)"')"
check "... saying so ($(wq status "$b" | jq -r .error))" contains "$(wq status "$b" | jq -r .error)" \
	"gs get 'gs://media/in/big.mp4' failed: larger than 2097152 bytes (MAX_INPUT_BYTES)"
expect_eq "nothing left in the worker's TMPDIR" "" "$(ls -A "$T/wtmp")"

# ---- a large input under the cap: the working space is the temp file, not memory ----
# On Cloud Run /tmp is memory, so what a job may take is the documented
# sum (docs/STORAGE.md "Large inputs and working space"): the download in
# TMPDIR, up to MAX_INPUT_BYTES, plus the process. Shown: the download goes
# to the file as it arrives (the worker's peak RSS does not grow with the
# input), the temp file is the input's size and is gone after the job, and
# the peaks stay within that sum for this configuration.
"$BIN/tests/tools/mkmedia" "$T/part.ts" -d 4 -s 320x240 -r 25 >/dev/null 2>&1
for i in $(seq 1 64); do cat "$T/part.ts"; done >"$T/large.ts" # MPEG-TS: copies in a row stay readable
while [ "$(stat -c %s "$T/large.ts")" -lt $((48 << 20)) ]; do cat "$T/large.ts" "$T/large.ts" >"$T/large2.ts"; mv "$T/large2.ts" "$T/large.ts"; done
LARGE=$(stat -c %s "$T/large.ts")
check "a $((LARGE >> 20)) MiB input uploaded" env "${GENV[@]}" TMP_DIR="$T" \
	"$FETCHCP" put "$T/large.ts" "gs://media/in/large.ts"
hwm() { awk '/^VmHWM:/ {print $2 * 1024}' "/proc/$1/status"; }
tmp_bytes() { find "$T/wtmp" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
start_worker w2 "${GENV[@]}" TMPDIR="$T/wtmp" DATA_DIR="$T/data" MAX_INPUT_BYTES=256M \
	IDLE_TIMEOUT=0.5 EXIT_ON_IDLE=false CONCURRENCY=1 || exit 1
# a small probe first: the FFmpeg libraries' pages are in the peak before the large one
s=$(wq enqueue media.probe --payload '{"input":"gs://media/in/clip.mp4"}' --max-attempts 1)
curl -fs -XPOST "$w2_URL/wake" >/dev/null
expect_eq "a small probe first (the media libraries loaded)" done "$(wq status "$s" | jq -r .status)"
h0=$(hwm "$w2_PID")
l=$(wq enqueue media.probe --payload '{"input":"gs://media/in/large.ts"}' --max-attempts 1)
tmp_peak=0
curl -fs -XPOST "$w2_URL/wake?wait=0" >/dev/null
for i in $(seq 1 1500); do # the temp file's size, sampled every 10 ms until the job ends
	n=$(tmp_bytes)
	[ "${n:-0}" -gt "$tmp_peak" ] && tmp_peak=$n
	[ "$(wq status "$l" | jq -r .status)" = done ] && break
	sleep 0.01
done
h1=$(hwm "$w2_PID")
expect_eq "the $((LARGE >> 20)) MiB input under the cap (256 MiB): probed, done" "done mpegts" \
	"$(wq status "$l" | jq -r '"\(.status) \(.result.format)"')"
check "the download went to TMPDIR as it came: peak RSS grew $(((h1 - h0) >> 20)) MiB (< 16) for the input's $((LARGE >> 20))" \
	test $((h1 - h0)) -lt $((16 << 20))
check "the temp file was the working space: $((tmp_peak >> 20)) MiB seen at the most (<= the input)" \
	test "$tmp_peak" -le "$LARGE"
check "within the documented sum for CONCURRENCY=1: RSS $((h1 >> 20)) MiB + TMPDIR $((tmp_peak >> 20)) MiB <= MAX_INPUT_BYTES 256 + 300 MiB" \
	test $((h1 + tmp_peak)) -le $(((256 + 300) << 20))
expect_eq "and TMPDIR is empty after the job" "" "$(ls -A "$T/wtmp")"
kill_wait "$w2_PID"

# ---- presigned uploads through the API ----------------------------------------------
TOKEN=tok-43
H="Authorization: Bearer $TOKEN"
_start_api "${GENV[@]}" UPLOAD_TARGET=gs://media/uploads/ UPLOAD_URL_TTL=600 \
	GCS_HMAC_ACCESS_ID="$HMAC_ID" GCS_HMAC_SECRET="$HMAC_SECRET" DATA_DIR="$T/data"
r=$(curl -sS -w ' %{http_code}' -XPOST -H "$H" "$API/v1/uploads?presign=1&name=holiday.MP4&content_type=video/mp4")
expect_eq "presign -> 201" 201 "${r##* }"
body=${r% *}
URL=$(jq -r .url <<<"$body")
UP=$(jq -r .upload_url <<<"$body")
check "url is gs://media/uploads/<uuidv7>.mp4 ($URL)" \
	bash -c "[[ '$URL' =~ ^gs://media/uploads/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\\.mp4\$ ]]"
expect_eq "method PUT" PUT "$(jq -r .method <<<"$body")"
expect_eq "the Content-Type to send" video/mp4 "$(jq -r '.headers["Content-Type"]' <<<"$body")"
expect_eq "expires_in is UPLOAD_URL_TTL" 600 "$(jq -r '.expires_in' <<<"$body" | sed 's/^59[89]$/600/')"
check "expires_at is RFC 3339 ($(jq -r .expires_at <<<"$body"))" \
	bash -c "[[ '$(jq -r .expires_at <<<"$body")' =~ ^20[0-9-]{8}T[0-9:.]+Z\$ ]]"
check "the upload URL is a V4 signed URL on the bucket" contains "$UP" \
	"$G/media/uploads/${URL##*/}?X-Goog-Algorithm=GOOG4-HMAC-SHA256&X-Goog-Credential=$HMAC_ID%2F"
check "... without the secret in it" bash -c "! grep -qF '$HMAC_SECRET' <<<'$UP'"
code=$(curl -s -o "$T/bad.xml" -w '%{http_code}' -XPUT -H 'Content-Type: text/plain' \
	--data-binary @"$T/clip.mp4" "$UP")
expect_eq "PUT with another content type -> 403" 403 "$code"
check "... SignatureDoesNotMatch" grep -q SignatureDoesNotMatch "$T/bad.xml"
# the signature's last digit changed (to 1 when it is 0: sending it
# unchanged would store the object)
alt=0
[ "${UP: -1}" = 0 ] && alt=1
code=$(curl -s -o /dev/null -w '%{http_code}' -XPUT -H 'Content-Type: video/mp4' \
	--data-binary @"$T/clip.mp4" "${UP%?}$alt")
expect_eq "PUT with a changed signature -> 403" 403 "$code"
expect_eq "refused PUTs stored nothing" "" "$(obj "uploads/${URL##*/}" size)"
code=$(curl -s -o /dev/null -w '%{http_code}' -XPUT -H 'Content-Type: video/mp4' \
	--data-binary @"$T/clip.mp4" "$UP")
expect_eq "the client PUTs the clip straight to the bucket -> 200" 200 "$code"
expect_eq "stored intact through the signed URL" "$(sha256sum "$T/clip.mp4" | cut -d' ' -f1)" \
	"$(obj "uploads/${URL##*/}" sha256)"
expect_eq "... signed by the API, checked by the fake" 1 "$(objects | jq -r .signed_ok)"
r=$(curl -sS -w ' %{http_code}' -H "$H" -H 'Content-Type: application/json' \
	-d "{\"type\":\"media.probe\",\"payload\":{\"input\":\"$URL\"}}" "$API/v1/jobs")
expect_eq "a job with the answered gs:// url -> 202" 202 "${r##* }"
J=$(jq -r .id <<<"${r% *}")
curl -fs -XPOST "$w_URL/wake" >/dev/null
job=$(curl -s -H "$H" "$API/v1/jobs/$J")
expect_eq "the worker probed the uploaded clip" "done 4" \
	"$(jq -r '"\(.status) \(.result.duration_s | round)"' <<<"$job")"
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -XPOST -H "$H" "$API/v1/uploads?presign=1&content_type=bad")
expect_eq "a bad content_type -> 400" 400 "$r"
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -XPOST "$API/v1/uploads?presign=1")
expect_eq "presign needs the API token -> 401" 401 "$r"
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -XPOST -H "$H" --data-binary @"$T/clip.mp4" \
	"$API/v1/uploads?presign=1")
expect_eq "presign with a body -> 400 unexpected_body" "400 unexpected_body" \
	"$r $(jq -r .error.code "$T/r.json")"
expect_eq "... and nothing stored in DATA_DIR" "" "$(ls -A "$T/data/uploads" 2>/dev/null)"
stop_api

_start_api DATA_DIR="$T/data"
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -XPOST -H "$H" "$API/v1/uploads?presign=1")
expect_eq "no UPLOAD_TARGET: presign -> 400" 400 "$r"
expect_eq "... not_configured" not_configured "$(jq -r .error.code "$T/r.json")"
stop_api
out=$(env PORT=0 HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN=x UPLOAD_TARGET=gs://b/ \
	timeout 10 "$BIN/wakeq-api" 2>&1)
check "a bad UPLOAD_TARGET stops the API with one clear line ($out)" contains "$out" \
	"bad UPLOAD_TARGET: bad gs url"

[ "$_t_failed" = 0 ] || { diag "$T/w.log"; diag "$T/api.log"; diag "$T/g.log"; }
exit "${_t_failed:-0}"
