#!/usr/bin/env bash
# 40_fetch_s3.sh - s3:// outputs and inputs through internal/fetch
# (build/tests/tools/fetchcp) against s3rver, an S3-compatible server from
# the npm registry, installed by this test into a cache folder and run on
# loopback. Objects must arrive intact: read back both from the server's
# own storage and over S3 GET.
#
# s3rver checks the access key id but not the SigV4 signature itself; the
# signature is checked independently in tests/unit/fetch (test_s3_sigv4).
set -u
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/tap.sh"
t_tmpdir

FETCHCP=$BIN/tests/tools/fetchcp
S3RVER_VERSION=3.7.1
cache=${WAKEQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wakeq}/s3rver-$S3RVER_VERSION
s3rver=$cache/node_modules/.bin/s3rver

if [ ! -x "$s3rver" ]; then
	mkdir -p "$cache"
	if ! npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
		"s3rver@$S3RVER_VERSION" >"$T/npm.log" 2>&1; then
		not_ok "install s3rver $S3RVER_VERSION from the npm registry (cannot test s3://)"
		diag "$T/npm.log"
		exit 1
	fi
fi
check "s3rver is installed" test -x "$s3rver"
check "fetchcp is built" test -x "$FETCHCP"

port=$($FREEPORT)
mkdir -p "$T/s3"
"$s3rver" -d "$T/s3" -a 127.0.0.1 -p "$port" --configure-bucket media \
	--silent >"$T/s3rver.log" 2>&1 &
s3pid=$!
on_exit "kill_wait $s3pid"
if ! wait_until 20 curl -s -o /dev/null "http://127.0.0.1:$port/"; then
	not_ok "s3rver started on port $port"
	diag "$T/s3rver.log"
	exit 1
fi
ok "s3rver started on port $port"

export S3_ENDPOINT="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=S3RVER \
	AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 \
	ALLOW_PRIVATE_NETWORKS=loopback TMP_DIR=$T DATA_DIR=$T

head -c 3000000 /dev/urandom >"$T/clip.bin"
key='out/clip 1+2.mp4'

check "put s3://media/$key" "$FETCHCP" put "$T/clip.bin" "s3://media/$key"
stored="$T/s3/media/$key._S3rver_object"
check "object stored intact on the server" cmp -s "$T/clip.bin" "$stored"
check "get s3://media/$key" "$FETCHCP" get "s3://media/$key" "$T/back.bin"
check "object read back intact over S3" cmp -s "$T/clip.bin" "$T/back.bin"

# empty objects work too
: >"$T/empty.bin"
check "put an empty object" "$FETCHCP" put "$T/empty.bin" "s3://media/empty"
check "empty object stored" test -f "$T/s3/media/empty._S3rver_object" -a \
	! -s "$T/s3/media/empty._S3rver_object"

out=$("$FETCHCP" get "s3://media/missing.mp4" "$T/x" 2>&1)
expect_eq "missing object is not_found" "not_found" \
	"$(echo "$out" | sed -n 's/^fetchcp: \([a-z_]*\):.*/\1/p')"

out=$(AWS_ACCESS_KEY_ID=nobody "$FETCHCP" put "$T/clip.bin" "s3://media/x" 2>&1)
expect_eq "unknown access key is refused" "unauthorized" \
	"$(echo "$out" | sed -n 's/^fetchcp: \([a-z_]*\):.*/\1/p')"

out=$(ALLOW_PRIVATE_NETWORKS='' "$FETCHCP" put "$T/clip.bin" "s3://media/y" 2>&1)
case "$out" in
*"refused address 127.0.0.1"*) ok "loopback endpoint refused without ALLOW_PRIVATE_NETWORKS" ;;
*) not_ok "loopback endpoint refused without ALLOW_PRIVATE_NETWORKS (got: $out)" ;;
esac
check "refused upload stored nothing" test ! -e "$T/s3/media/y._S3rver_object"
# no temp files left behind by any of the above
left=$(find "$T" -mindepth 1 -maxdepth 1 -name 'wakeq-*' | wc -l)
expect_eq "no temp files left" 0 "$left"

exit "${_t_failed:-0}"
