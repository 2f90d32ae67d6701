#!/usr/bin/env bash
# 55_uploads - POST /v1/uploads with the real wakeq-api over HTTP: a
# generated clip is streamed into DATA_DIR/uploads (bytes and SHA-256
# checked, file compared), a real worker probes it through the file:// URL
# the API answered (job posted through the API, which wakes the worker);
# over-cap (Content-Length and chunked), unauthenticated, disconnected and
# disk-full uploads leave nothing behind; the API's peak RSS does not grow
# with a 50 MB upload.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/test.sh
start_redis

D=$T/data
U=$D/uploads
mkdir -p "$D"
api_token tok-55
OCT="Content-Type: application/octet-stream"

start_worker w DATA_DIR="$D" EXIT_ON_IDLE=false CONCURRENCY=1 || exit 1

# start_api NAME VAR=VALUE...: wakeq-api on a free port; NAME_PID, NAME_URL
start_api() {
	local name=$1 port pid
	shift
	port=$($FREEPORT)
	env PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" API_TOKEN=$TOKEN \
		RECONCILE_INTERVAL=0 "$@" "$BIN/wakeq-api" >>"$T/$name.log" 2>&1 &
	pid=$!
	on_exit "kill_wait $pid"
	eval "${name}_PID=$pid ${name}_URL=http://127.0.0.1:$port"
	wait_until "$START_S" curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
	echo "# api $name did not start"
	diag "$T/$name.log"
	return 1
}
start_api api DATA_DIR="$D" MAX_UPLOAD=60M WAKE_URL="$w_URL/wake" || exit 1
API=$api_URL

# every entry of the uploads folder, temp files included
entries() { ls -A "$U" 2>/dev/null | sort; }
nentries() { entries | wc -l; }
no_part() { ! ls -A "$U" 2>/dev/null | grep -q '\.part$'; }

# ---- a real clip, stored and probed -----------------------------------------
"$BIN/tests/tools/mkmedia" "$T/clip.mp4" -d 4 -s 320x240 -r 25 >/dev/null 2>&1
check "the test clip was made" test -s "$T/clip.mp4"
r=$(curl -sS -w ' %{http_code}' -H "$H" -H "$OCT" --data-binary @"$T/clip.mp4" \
	"$API/v1/uploads?name=holiday.clip.MP4")
expect_eq "upload -> 201" 201 "${r##* }"
body=${r% *}
URL=$(jq -r .url <<<"$body")
check "url is file://uploads/<uuidv7>.mp4 ($URL)" \
	bash -c "[[ '$URL' =~ ^file://uploads/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\\.mp4\$ ]]"
expect_eq "bytes match the file" "$(stat -c %s "$T/clip.mp4")" "$(jq -r .bytes <<<"$body")"
expect_eq "sha256 matches sha256sum" "$(sha256sum "$T/clip.mp4" | cut -d' ' -f1)" \
	"$(jq -r .sha256 <<<"$body")"
F=$D/${URL#file://}
check "the stored file has the same content" cmp -s "$T/clip.mp4" "$F"
expect_eq "stored with mode 0640" 640 "$(stat -c %a "$F" 2>/dev/null)"
check "no temp file left" no_part

r=$(curl -sS -w ' %{http_code}' -H "$H" -H 'Content-Type: application/json' \
	-d "{\"type\":\"media.probe\",\"payload\":{\"input\":\"$URL\"}}" "$API/v1/jobs")
expect_eq "POST media.probe with the upload's url -> 202" 202 "${r##* }"
JOB=$(jq -r .id <<<"${r% *}")
done_job() { [ "$(curl -s -H "$H" "$API/v1/jobs/$JOB" | jq -r .status)" = done ]; }
wait_until 30 done_job
job=$(curl -s -H "$H" "$API/v1/jobs/$JOB")
expect_eq "the worker ran the probe to done" done "$(jq -r .status <<<"$job")"
expect_eq "probe: duration of the 4 s clip" 4 "$(jq -r '.result.duration_s | round' <<<"$job")"
expect_eq "probe: video stream 320x240" 320x240 \
	"$(jq -r '.result.streams[] | select(.type=="video") | "\(.width)x\(.height)"' <<<"$job")"
expect_eq "probe: size_bytes is the uploaded size" "$(stat -c %s "$T/clip.mp4")" \
	"$(jq -r .result.size_bytes <<<"$job")"

# ---- chunked, names ------------------------------------------------------------
r=$(curl -sS -w ' %{http_code}' -H "$H" -H "$OCT" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$T/clip.mp4" "$API/v1/uploads?name=../../etc/x.m/p4")
expect_eq "chunked upload -> 201" 201 "${r##* }"
expect_eq "chunked: sha256 matches" "$(sha256sum "$T/clip.mp4" | cut -d' ' -f1)" \
	"$(jq -r .sha256 <<<"${r% *}")"
u2=$(jq -r .url <<<"${r% *}")
check "an unsafe ?name adds no extension ($u2)" \
	bash -c "[[ '$u2' =~ ^file://uploads/[0-9a-f-]{36}\$ ]]"
check "chunked: stored file identical" cmp -s "$T/clip.mp4" "$D/${u2#file://}"

# ---- refused uploads write nothing --------------------------------------------
before=$(entries)
head -c 100000 /dev/urandom >"$T/small.bin"
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -H "$OCT" --data-binary @"$T/small.bin" "$API/v1/uploads")
expect_eq "no token -> 401" 401 "$r"
expect_eq "401 is a JSON error" unauthorized "$(jq -r .error.code "$T/r.json")"
r=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' -H "$OCT" \
	--data-binary @"$T/small.bin" "$API/v1/uploads")
expect_eq "bad token -> 401" 401 "$r"
r=$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" -F "f=@$T/small.bin" "$API/v1/uploads")
expect_eq "multipart/form-data -> 415" 415 "$r"
r=$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" "$API/v1/uploads")
expect_eq "GET /v1/uploads -> 405" 405 "$r"
r=$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" -XPOST "$API/v1/uploads")
expect_eq "empty upload -> 400" 400 "$r"
expect_eq "refused uploads left nothing in the folder" "$before" "$(entries)"

# over the cap (60M): Content-Length is refused before any byte is read
truncate -s 61M "$T/big.bin"
r=$(curl -sS -o "$T/r.json" -w '%{http_code} %{size_upload}' -H "$H" -H "$OCT" \
	--data-binary @"$T/big.bin" "$API/v1/uploads")
expect_eq "over-cap upload -> 413" 413 "${r%% *}"
expect_eq "413 is a JSON error" too_large "$(jq -r .error.code "$T/r.json")"
check "413 came before the body was sent (sent ${r##* } bytes)" test "${r##* }" -lt 1000000
# chunked: no length to check first, stopped once past the cap
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" -H "$OCT" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$T/big.bin" "$API/v1/uploads" 2>/dev/null)
check "over-cap chunked upload is not stored (got $code)" test "$code" != 201
wait_until 5 no_part
expect_eq "over-cap uploads left nothing in the folder" "$before" "$(entries)"

# ---- a client that disconnects mid-upload ---------------------------------------
head -c 20000000 /dev/zero >"$T/z20.bin"
curl -sS -o /dev/null -H "$H" -H "$OCT" --limit-rate 2M -T "$T/z20.bin" -X POST \
	"$API/v1/uploads" 2>/dev/null &
CURL=$!
wait_until 5 bash -c "ls -A '$U' | grep -q '\\.part\$'"
check "a temp file exists while the upload streams" bash -c "ls -A '$U' | grep -q '\\.part\$'"
kill "$CURL" 2>/dev/null
wait "$CURL" 2>/dev/null
wait_until 5 no_part
expect_eq "the disconnected upload left nothing" "$before" "$(entries)"

# ---- memory: a 50 MB upload is streamed, not buffered ---------------------------
head -c 52428800 /dev/urandom >"$T/r50.bin"
hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$api_PID/status")
r=$(curl -sS -w ' %{http_code}' -H "$H" -H "$OCT" -T "$T/r50.bin" -X POST "$API/v1/uploads")
hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$api_PID/status")
expect_eq "50 MB upload -> 201" 201 "${r##* }"
expect_eq "50 MB: sha256 matches" "$(sha256sum "$T/r50.bin" | cut -d' ' -f1)" \
	"$(jq -r .sha256 <<<"${r% *}")"
echo "# api VmHWM ${hwm0} kB -> ${hwm1} kB over a 50 MB upload"
check "the API's peak RSS grew by less than 8 MB ($((hwm1 - hwm0)) kB)" \
	test $((hwm1 - hwm0)) -lt 8192
rm -f "$D/$(jq -r .url <<<"${r% *}" | sed 's#^file://##')"

# ---- DATA_DIR not writable: 503 -------------------------------------------------
: >"$T/not-a-dir"
start_api bad DATA_DIR="$T/not-a-dir" || exit 1
r=$(curl -sS -o "$T/r.json" -w '%{http_code}' -H "$H" -H "$OCT" --data-binary @"$T/small.bin" \
	"$bad_URL/v1/uploads")
expect_eq "DATA_DIR not writable -> 503" 503 "$r"
expect_eq "503 is a JSON error" unavailable "$(jq -r .error.code "$T/r.json")"

# ---- disk full: the partial file is removed (needs tmpfs; root here) -------------
mkdir -p "$T/small"
if mount -t tmpfs -o size=1m tmpfs "$T/small" 2>/dev/null; then
	on_exit "umount '$T/small'"
	start_api full DATA_DIR="$T/small" || exit 1
	head -c 3000000 /dev/urandom >"$T/r3.bin"
	code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$H" -H "$OCT" --data-binary @"$T/r3.bin" \
		"$full_URL/v1/uploads" 2>/dev/null)
	check "an upload larger than the free disk is not stored (got $code)" test "$code" != 201
	wait_until 5 bash -c "[ -z \"\$(ls -A '$T/small/uploads')\" ]"
	expect_eq "the disk-full upload left nothing" "" "$(ls -A "$T/small/uploads")"
	r=$(curl -sS -w ' %{http_code}' -H "$H" -H "$OCT" --data-binary @"$T/small.bin" \
		"$full_URL/v1/uploads")
	expect_eq "the API stores the next upload that fits" 201 "${r##* }"
else
	echo "# tmpfs cannot be mounted here: disk-full case not run"
fi

[ "$_t_failed" = 0 ] || { diag "$T/api.log"; diag "$T/w.log"; }
exit 0
