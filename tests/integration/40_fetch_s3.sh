#!/usr/bin/env bash
# 40_fetch_s3.sh - s3:// outputs and inputs through internal/fetch
# (build/tests/tools/fetchcp) against s3rver, an S3-compatible server from
# the npm registry, installed by this test into a cache folder and run on
# loopback. Objects must arrive intact: read back both from the server's
# own storage and over S3 GET. Keys with "." and ".." segments reach the
# server as given (its log names the key it stored), failures carry S3's
# error code, and the AWS-standard settings (AWS_ENDPOINT_URL_S3, a shared
# credentials file) work as well as S3_ENDPOINT and AWS_ACCESS_KEY_ID.
#
# s3rver checks the access key id but not the SigV4 signature itself; the
# signature is checked independently in tests/unit/fetch (test_fetch_s3).
set -u
. "$(dirname "$0")/../lib/test.sh"

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
# not --silent: its log names each stored key
"$s3rver" -d "$T/s3" -a 127.0.0.1 -p "$port" --configure-bucket media \
	>"$T/s3rver.log" 2>&1 &
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
	ALLOW_PRIVATE_NETWORKS=loopback TMP_DIR=$T DATA_DIR=$T \
	AWS_EC2_METADATA_DISABLED=true HOME=$T

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
expect_eq "the message carries S3's code and message" \
	"s3 get 's3://media/missing.mp4' failed: 404 NoSuchKey: The specified key does not exist." \
	"$(echo "$out" | sed -n 's/^fetchcp: [a-z_]*: //p')"

out=$(AWS_ACCESS_KEY_ID=nobody "$FETCHCP" put "$T/clip.bin" "s3://media/x" 2>&1)
expect_eq "unknown access key is refused" "unauthorized" \
	"$(echo "$out" | sed -n 's/^fetchcp: \([a-z_]*\):.*/\1/p')"
case "$out" in
*"s3 put 's3://media/x' failed: 403 InvalidAccessKeyId: "*) ok "refusal names InvalidAccessKeyId" ;;
*) not_ok "refusal names InvalidAccessKeyId (got: $out)" ;;
esac

# "." and ".." segments are part of the key: sent as given, not folded
echo dots >"$T/dots.bin"
check "put s3://media/d/./x/../y.bin" "$FETCHCP" put "$T/dots.bin" "s3://media/d/./x/../y.bin"
check "the server stored the literal key d/./x/../y.bin" \
	grep -qF 'Stored object "d/./x/../y.bin"' "$T/s3rver.log"

# AWS-standard settings: AWS_ENDPOINT_URL_S3 and a shared credentials file
printf '[default]\naws_access_key_id = nobody\naws_secret_access_key = nobody\n[s3rver]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' >"$T/credentials"
check "get through AWS_ENDPOINT_URL_S3 and AWS_PROFILE" env -u S3_ENDPOINT \
	-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
	AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_PROFILE=s3rver \
	AWS_SHARED_CREDENTIALS_FILE="$T/credentials" \
	"$FETCHCP" get "s3://media/$key" "$T/back2.bin"
check "object read back intact" cmp -s "$T/clip.bin" "$T/back2.bin"

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
