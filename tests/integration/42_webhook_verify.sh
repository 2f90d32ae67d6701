#!/usr/bin/env bash
# 42_webhook_verify.sh - webhooks delivered by the real worker, verified by
# independent libraries from the npm registry (tests/tools/hookverify.js):
# the stripe package's webhooks.constructEvent for X-Wakeq-Signature
# (t=...,v1=...) and the Standard Webhooks project's standardwebhooks
# package for webhook-id / webhook-timestamp / webhook-signature.
#
# With one secret (written as is, and in whsec_BASE64 form), and during a
# rotation (WEBHOOK_SECRET + WEBHOOK_SECRET_PREVIOUS): a receiver that
# knows only the old secret and one that knows only the new one both
# accept the same delivery; a wrong secret is refused by both libraries.
# Both packages are installed by this test into $BUILD/npm (once).
set -u
. "$(dirname "$0")/../lib/test.sh"

STANDARDWEBHOOKS_VERSION=1.1.1
STRIPE_VERSION=23.1.0
NPM_DIR=$BIN/npm

installed() { # installed PACKAGE VERSION
	[ "$(node -p "require('$NPM_DIR/node_modules/$1/package.json').version" \
		2>/dev/null)" = "$2" ]
}
if ! installed standardwebhooks "$STANDARDWEBHOOKS_VERSION" ||
	! installed stripe "$STRIPE_VERSION"; then
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		not_ok "node and npm are needed to install the webhook verifiers (container/deps.sh install test)"
		exit 1
	fi
	mkdir -p "$NPM_DIR"
	if ! timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund \
		--loglevel=error "standardwebhooks@$STANDARDWEBHOOKS_VERSION" \
		"stripe@$STRIPE_VERSION" >"$T/npm.log" 2>&1; then
		not_ok "cannot install standardwebhooks@$STANDARDWEBHOOKS_VERSION and stripe@$STRIPE_VERSION from the npm registry: the verifiers this test checks against are missing"
		diag "$T/npm.log"
		exit 1
	fi
fi
check "standardwebhooks $STANDARDWEBHOOKS_VERSION is installed" \
	installed standardwebhooks "$STANDARDWEBHOOKS_VERSION"
check "stripe $STRIPE_VERSION is installed" installed stripe "$STRIPE_VERSION"

start_redis

RAW="wakeq raw secret $RANDOM"                         # used as written
NEW="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')" # Standard form
NEWER="whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')"
WRONG="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
n=0

# deliver NAME VAR=VALUE... -- SECRET...: a receiver that checks with each
# SECRET on its own, a worker (settings VAR=VALUE) on a queue of its own,
# one job with a callback; leaves the receiver's /last in $T/NAME.json.
deliver() {
	local name=$1 port rpid id settings=()
	shift
	while [ "$1" != -- ]; do settings+=("$1"); shift; done
	shift
	n=$((n + 1))
	NODE_PATH=$NPM_DIR/node_modules node "$TOP/tests/tools/hookverify.js" "$@" \
		>"$T/$name.port" 2>"$T/$name.recv.log" &
	rpid=$!
	on_exit "kill_wait $rpid"
	if ! wait_until 10 test -s "$T/$name.port"; then
		not_ok "$name: the verifying receiver started"
		diag "$T/$name.recv.log"
		return 1
	fi
	port=$(head -1 "$T/$name.port")
	id=$(wq enqueue noop --queue "q$n" --callback-url "http://127.0.0.1:$port/hook")
	start_worker "w$n" QUEUES="q$n" IDLE_TIMEOUT=1 ALLOW_PRIVATE_NETWORKS=loopback \
		"${settings[@]}" || return 1
	# a held wake: the job, then its delivery, then one idle second
	curl -fs -XPOST "$(eval echo "\$w${n}_URL")/wake" >/dev/null
	wait_until 10 sh -c "[ \"\$(curl -fs http://127.0.0.1:$port/last | jq .count)\" -ge 1 ]"
	curl -fs "http://127.0.0.1:$port/last" >"$T/$name.json"
	expect_eq "$name: one delivery, of the job" "1 $id" \
		"$(jq -r '"\(.count) \(.body.id)"' "$T/$name.json")"
	# what each library said, shown when a check below fails
	jq -r '.results[] | "# \(.stripe_error) / \(.standard_error)"' "$T/$name.json"
}

# verdict NAME I: "stripe standard" results of the I-th secret (0-based)
verdict() { jq -r ".results[$2] | \"\(.stripe) \(.standard)\"" "$T/$1.json"; }
header() { jq -r ".headers[\"$2\"]" "$T/$1.json"; }

# One secret, used as written (not whsec_): stripe takes it as is, and
# standardwebhooks as raw bytes.
deliver raw WEBHOOK_SECRET="$RAW" -- "$RAW" "$WRONG"
expect_eq "raw secret: stripe and standardwebhooks both accept" "true true" "$(verdict raw 0)"
expect_eq "raw secret: a wrong secret is refused by both" "false false" "$(verdict raw 1)"
expect_eq "one secret: one v1 entry in X-Wakeq-Signature" 1 \
	"$(header raw x-wakeq-signature | tr ',' '\n' | grep -c '^v1=')"
expect_eq "one secret: one entry in webhook-signature" 1 \
	"$(header raw webhook-signature | tr ' ' '\n' | grep -c '^v1,')"
expect_eq "webhook-id is the delivery id" "$(header raw x-wakeq-delivery)" \
	"$(header raw webhook-id)"
expect_eq "webhook-timestamp is the signature's t" \
	"$(header raw x-wakeq-signature | sed -n 's/^t=\([0-9]*\),.*/\1/p')" \
	"$(header raw webhook-timestamp)"

# One secret in the Standard Webhooks form: standardwebhooks decodes it
# (whsec_ + base64), stripe uses it as written, like X-Wakeq-Signature.
deliver std WEBHOOK_SECRET="$NEW" -- "$NEW" "$WRONG"
expect_eq "whsec_ secret: stripe and standardwebhooks both accept" "true true" "$(verdict std 0)"
expect_eq "whsec_ secret: a wrong secret is refused by both" "false false" "$(verdict std 1)"

# Rotation from a plain secret to a whsec_ one: receivers that know only
# the old secret, or only the new one, both accept.
deliver rotate WEBHOOK_SECRET="$NEW" WEBHOOK_SECRET_PREVIOUS="$RAW" -- "$RAW" "$NEW" "$WRONG"
expect_eq "rotation: a receiver with only the old secret accepts (stripe, standardwebhooks)" \
	"true true" "$(verdict rotate 0)"
expect_eq "rotation: a receiver with only the new secret accepts (stripe, standardwebhooks)" \
	"true true" "$(verdict rotate 1)"
expect_eq "rotation: a wrong secret is still refused by both" "false false" "$(verdict rotate 2)"
expect_eq "rotation: two v1 entries in X-Wakeq-Signature" 2 \
	"$(header rotate x-wakeq-signature | tr ',' '\n' | grep -c '^v1=')"
expect_eq "rotation: two space-separated entries in webhook-signature" 2 \
	"$(header rotate webhook-signature | tr ' ' '\n' | grep -c '^v1,')"

# Rotation between two whsec_ secrets.
deliver rotate2 WEBHOOK_SECRET="$NEWER" WEBHOOK_SECRET_PREVIOUS="$NEW" -- "$NEW" "$NEWER"
expect_eq "whsec_ rotation: only the old secret accepts" "true true" "$(verdict rotate2 0)"
expect_eq "whsec_ rotation: only the new secret accepts" "true true" "$(verdict rotate2 1)"

# Settings that cannot sign are refused at start-up, naming the variable
# and never printing the secret.
refused() { # refused VAR=VALUE...: exit 2 with one line; prints that line
	env REDIS_URL="$REDIS_URL" PORT=0 "$@" timeout 10 "$BIN/wakeq-worker" \
		>/dev/null 2>"$T/refused.err"
	[ $? = 2 ] && cat "$T/refused.err"
}
msg=$(refused WEBHOOK_SECRET="whsec_not*base64")
check "a whsec_ secret that is not base64 stops start-up, naming WEBHOOK_SECRET" \
	contains "$msg" "WEBHOOK_SECRET"
check "without printing the secret" sh -c "! grep -q 'not\*base64' '$T/refused.err'"
msg=$(refused WEBHOOK_SECRET="" WEBHOOK_SECRET_PREVIOUS="$RAW")
check "WEBHOOK_SECRET_PREVIOUS without WEBHOOK_SECRET stops start-up" \
	contains "$msg" "WEBHOOK_SECRET_PREVIOUS"
exit 0
