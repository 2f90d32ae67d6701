#!/usr/bin/env bash
# 21_http_handlers - http handlers (kind "http" in the registry) through
# API -> wake -> worker -> result: the worker POSTs each job to a local
# service (a small Python program on loopback, allowed by the entry's
# allow_private) with an OIDC identity token from a fake metadata server
# speaking the real protocol (tests/tools/fakegcp): the token has the
# entry's audience, is cached across jobs and renewed before it expires.
# A 2xx JSON answer is the result; 503 with Retry-After is retried no
# sooner than it says; 4xx, invalid JSON and oversized answers fail; a
# static bearer comes from the variable bearer_env names; without
# allow_private the address policy refuses loopback. http.request's
# auth.oidc_audience sends a token to its own origin only.
cd "$(dirname "$0")/../.."
. tests/lib/test.sh
start_redis


# ---- the user's service: records every request, answers by payload.mode ----
cat >"$T/svc.py" <<'EOF'
import json, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = open(sys.argv[1], "a", buffering=1)
lock = threading.Lock()
calls = {}  # requests per job id

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, status, body, extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        req = json.loads(raw)
        with lock:
            log.write(json.dumps({"t": time.time(), "path": self.path,
                                  "headers": {k.lower(): v for k, v in self.headers.items()},
                                  "body": req}) + "\n")
        p = req.get("payload") or {}
        mode = p.get("mode", "ok")
        if mode == "busy" and req.get("attempt", 1) <= p.get("times", 1):
            return self.answer(503, {"error": "busy"}, [("Retry-After", "2")])
        with lock:
            calls[req.get("id")] = calls.get(req.get("id"), 0) + 1
            first = calls[req.get("id")] == 1
        if mode == "limited" and first:
            return self.answer(429, {"error": "slow down"}, [("Retry-After", "1")])
        if mode == "bad":
            return self.answer(422, {"error": "text is required"})
        if mode == "notjson":
            return self.answer(200, b"hello, not json")
        if mode == "big":
            return self.answer(200, {"blob": "x" * 500})
        if mode == "slow":
            time.sleep(5)
        self.answer(200, {"echo": p, "attempt": req.get("attempt")})

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
start_fake SVC python3 "$T/svc.py" "$T/requests.log"
start_fake G "$BIN/tests/tools/fakegcp" --token-ttl 6

cat >"$T/handlers.json" <<EOF
{"version": 1, "handlers": {
  "svc.oidc":    {"kind": "http", "url": "$SVC/run", "oidc_audience": "https://svc.example",
                  "allow_private": true, "max_attempts": 3},
  "svc.bearer":  {"kind": "http", "url": "$SVC/run?via=bearer", "bearer_env": "SVC_TOKEN",
                  "allow_private": true, "max_attempts": 1},
  "svc.small":   {"kind": "http", "url": "$SVC/run", "allow_private": true, "result_max": 100,
                  "max_attempts": 1},
  "svc.guarded": {"kind": "http", "url": "$SVC/run", "max_attempts": 1}
}}
EOF

start_worker W HANDLERS_FILE="$T/handlers.json" GCE_METADATA_HOST="${G#http://}" \
	SVC_TOKEN=s3cret-token BACKOFF_BASE=0.1 BACKOFF_CAP=0.2 IDLE_TIMEOUT=5 \
	ALLOW_PRIVATE_NETWORKS= || exit 1
_start_api NO_AUTH=true HANDLERS_FILE="$T/handlers.json" WAKE_URL="$W_URL/wake"

TRACE=4bf92f3577b34da6a3ce929d0e0e4736
post() { curl -s -H "$CT" -H "traceparent: 00-$TRACE-00f067aa0ba902b7-01" -d "$1" "$API/v1/jobs" | jq -r .id; }
final() { wait_until "${2:-10}" bash -c "case \$(REDIS_URL=$REDIS_URL $BIN/wakeq status $1 | jq -r .status) in done|failed) exit 0;; esac; exit 1"; }
seen() { jq -c "select(.body.id == \"$1\")" "$T/requests.log"; } # requests for job $1
aud_of() { cut -d. -f2 <<<"${1#Bearer }" | tr '_-' '/+' | { read -r p; while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done; base64 -d <<<"$p" 2>/dev/null; } | jq -r .aud; }
id_asks() { curl -s "$G/fake/metadata" | jq '[.audiences[] | select(. == "https://svc.example")] | length'; }

# ---- a job pushed with an OIDC token: the answer is the result ---------------
A=$(post '{"type":"svc.oidc","payload":{"text":"hi"}}')
final "$A"
expect_eq "http job done" done "$(job_field "$A" status)"
expect_eq "the 2xx JSON answer is the result" '{"attempt":1,"echo":{"text":"hi"}}' \
	"$(wq status "$A" | jq -c '.result | {attempt, echo}')"
req=$(seen "$A")
expect_eq "the service got the job: id, type, attempt, payload" "$A svc.oidc 1 hi" \
	"$(jq -r '"\(.body.id) \(.body.type) \(.body.attempt) \(.body.payload.text)"' <<<"$req")"
check "with its deadline" test "$(jq -r '.body.deadline | type' <<<"$req")" = number
expect_eq "and its id in X-Wakeq-Job-Id" "$A" "$(jq -r '.headers["x-wakeq-job-id"]' <<<"$req")"
check "the trace travels in traceparent" grep -q "^00-$TRACE-[0-9a-f]\{16\}-01$" \
	<<<"$(jq -r '.headers.traceparent' <<<"$req")"
check "and in X-Cloud-Trace-Context" grep -q "^$TRACE/[0-9]*;o=1$" \
	<<<"$(jq -r '.headers["x-cloud-trace-context"]' <<<"$req")"
TOK1=$(jq -r '.headers.authorization' <<<"$req")
expect_eq "an identity token for the entry's audience" "https://svc.example" "$(aud_of "$TOK1")"

B=$(post '{"type":"svc.oidc","payload":{"text":"again"}}')
final "$B"
TOK2=$(seen "$B" | jq -r '.headers.authorization')
expect_eq "the next job reuses the cached token" "$TOK1" "$TOK2"
expect_eq "asked of the metadata server once" 1 "$(id_asks)"
sleep 3.2 # the fake's tokens live 6 s: renewed after half their remaining life (2.5-3 s)
C=$(post '{"type":"svc.oidc","payload":{"text":"later"}}')
final "$C"
TOK3=$(seen "$C" | jq -r '.headers.authorization')
check "a token near its expiry is renewed" test "$TOK3" != "$TOK1"
expect_eq "the renewed token has the same audience" "https://svc.example" "$(aud_of "$TOK3")"
expect_eq "asked twice in all" 2 "$(id_asks)"

# ---- 503 with Retry-After: retried, and not sooner than it says ------------------
R=$(post '{"type":"svc.oidc","payload":{"mode":"busy","times":1}}')
final "$R" 15
expect_eq "a 503 is retried, then done" "done 2" "$(wq status "$R" | jq -r '"\(.status) \(.attempts)"')"
gap=$(seen "$R" | jq -s '.[1].t - .[0].t')
check "Retry-After: 2 honoured (next attempt ${gap} s later, backoff 0.1 s)" \
	awk -v g="$gap" 'BEGIN { exit !(g >= 1.9) }'

# ---- 429 with Retry-After: a push-back, the attempt not counted --------------------
L=$(post '{"type":"svc.oidc","group":"tenant-a","payload":{"mode":"limited"}}')
final "$L" 15
expect_eq "a 429 is pushed back, then done on attempt 1" "done 1" \
	"$(wq status "$L" | jq -r '"\(.status) \(.attempts)"')"
expect_eq "both requests carried attempt 1" "1 1" "$(seen "$L" | jq -rs '"\(.[0].body.attempt) \(.[1].body.attempt)"')"
gap=$(seen "$L" | jq -s '.[1].t - .[0].t')
check "its group waited Retry-After: 1 (${gap} s)" awk -v g="$gap" 'BEGIN { exit !(g >= 0.95) }'

# ---- answers that fail the job -----------------------------------------------------
F=$(post '{"type":"svc.oidc","payload":{"mode":"bad"}}')
final "$F"
expect_eq "a 4xx fails at once" "failed 1" "$(wq status "$F" | jq -r '"\(.status) \(.attempts)"')"
check "naming the handler, the status and the answer" contains "$(job_field "$F" error)" \
	"handler 'svc.oidc' answered 422: {\"error\": \"text is required\"}"
J=$(post '{"type":"svc.bearer","payload":{"mode":"notjson"}}')
final "$J"
check "a 2xx that is not JSON fails clearly" contains "$(job_field "$J" error)" \
	"handler 'svc.bearer' answered 200 with invalid JSON"
S=$(post '{"type":"svc.small","payload":{"mode":"big"}}')
final "$S"
check "an answer over result_max fails" contains "$(job_field "$S" error)" \
	"answered a result larger than 100 bytes (result_max)"
T1=$(post '{"type":"svc.bearer","payload":{"mode":"slow"},"timeout_s":1}')
final "$T1"
check "a service slower than the job's timeout: timed out" contains "$(job_field "$T1" error)" "timed out"

# ---- a static bearer from the environment ---------------------------------------------
K=$(post '{"type":"svc.bearer","payload":{}}')
final "$K"
expect_eq "bearer_env: the variable's value as the bearer" "Bearer s3cret-token" \
	"$(seen "$K" | jq -r '.headers.authorization')"

# ---- the address policy applies without allow_private ----------------------------------
P=$(post '{"type":"svc.guarded","payload":{}}')
final "$P"
check "loopback refused for an entry that does not allow it" contains "$(job_field "$P" error)" \
	"refused address 127.0.0.1"
expect_eq "the service never saw it" "" "$(seen "$P")"

# ---- http.request with auth.oidc_audience ------------------------------------------------
kill_wait "$W_PID"
start_worker W2 HANDLERS_FILE="$T/handlers.json" GCE_METADATA_HOST="${G#http://}" \
	SVC_TOKEN=x ALLOW_PRIVATE_NETWORKS=loopback IDLE_TIMEOUT=5 || exit 1
stop_api
_start_api NO_AUTH=true HANDLERS_FILE="$T/handlers.json" WAKE_URL="$W2_URL/wake"
H=$(post "{\"type\":\"http.request\",\"payload\":{\"url\":\"$SVC/run\",\"method\":\"POST\",
	\"body\":{\"id\":\"hr-1\",\"payload\":{}},\"auth\":{\"oidc_audience\":\"$SVC\"}}}")
final "$H"
expect_eq "http.request with auth: done" done "$(job_field "$H" status)"
expect_eq "with an identity token for its own origin" "$SVC" \
	"$(seen hr-1 | jq -r '.headers.authorization' | { read -r a; aud_of "$a"; })"
X=$(post "{\"type\":\"http.request\",\"payload\":{\"url\":\"$SVC/run\",\"method\":\"POST\",
	\"body\":{\"id\":\"hr-2\"},\"auth\":{\"oidc_audience\":\"https://other.example\"}}}")
final "$X"
check "a token for another service is never sent" contains "$(job_field "$X" error)" \
	"is not the origin of url"
expect_eq "nothing reached the service" "" "$(seen hr-2)"
code=$(curl -s -o "$T/bad.json" -w '%{http_code}' -H "$CT" \
	-d "{\"type\":\"http.request\",\"payload\":{\"url\":\"$SVC/run\",\"auth\":{\"audience\":\"x\"}}}" "$API/v1/jobs")
expect_eq "an unknown auth field is refused at the door" "400 payload field 'auth.audience' is unknown (known: oidc_audience)" \
	"$code $(jq -r .error.message "$T/bad.json")"

# ---- start-up checks ---------------------------------------------------------------------
out=$(env REDIS_URL=$REDIS_URL HANDLERS_FILE="$T/handlers.json" PORT=0 "$BIN/wakeq-worker" 2>&1)
check "a bearer_env that is not set stops the worker, naming it" contains "$out" \
	"handler 'svc.bearer' ($T/handlers.json:4): bearer_env 'SVC_TOKEN' is not set"
out=$(env HANDLERS_FILE="$T/handlers.json" "$BIN/wakeq" handlers 2>&1)
check "wakeq handlers shows the audience and the variable's name" \
	bash -c 'grep -q "oidc https://svc.example" <<<"$1" && grep -q "bearer \$SVC_TOKEN" <<<"$1"' _ "$out"
check "never a secret's value" bash -c '! grep -q s3cret <<<"$1"' _ "$out"

exit $_t_failed
