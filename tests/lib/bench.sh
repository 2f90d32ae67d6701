# bench.sh - how every benchmark of tests/bench begins, and what they
# share: sourced first (`. "$(dirname "$0")/../lib/bench.sh"`), it moves
# to the top of the tree, sets BUILD (default build) and loads servers.sh.
#
#   bench_write NAME FILE   puts FILE, a section from "<!-- bench:NAME -->"
#                           to "<!-- /bench:NAME -->", into
#                           docs/BENCHMARKS.md in place of the old one (at
#                           the end when there was none); with NOWRITE=1
#                           prints it instead
#   bench_need FILE... [-- CMD...]  stops unless every FILE is built and
#                           every CMD is on PATH
#   bullmq_ready            BullMQ and ioredis (BULLMQ_VERSION,
#                           IOREDIS_VERSION) from the npm registry,
#                           installed once into $NPM_DIR; sets BULL_OK (1
#                           when usable, else 0) and BULL_WHY (why not)
#   rq_ready                RQ of the system Python (Debian python3-rq,
#                           container/deps.sh): sets RQ_OK, RQ_WHY and
#                           RQ_VERSION ("-" when missing)

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${BUILD:-build}
. tests/lib/servers.sh

BULLMQ_VERSION=${BULLMQ_VERSION:-6.7.0}
IOREDIS_VERSION=${IOREDIS_VERSION:-6.0.0} # BullMQ's Redis client (a peer dependency)
NPM_DIR=${BIN:-$PWD/build}/npm-bench

# bench_need FILE... [-- CMD...]: every FILE executable (built by make
# tests) and every CMD on PATH, or the calling script stops saying which.
bench_need() {
	local me=${0##*/} x cmds=0
	for x in "$@"; do
		if [ "$x" = -- ]; then
			cmds=1
		elif [ "$cmds" = 1 ]; then
			command -v "$x" >/dev/null || { echo "$me: $x missing" >&2; exit 1; }
		else
			[ -x "$x" ] || { echo "$me: $x missing (make tests)" >&2; exit 1; }
		fi
	done
}

bench_write() {
	local doc=docs/BENCHMARKS.md
	if [ "${NOWRITE:-0}" = 1 ]; then
		cat "$2"
		return 0
	fi
	[ -f "$doc" ] || printf '# Benchmarks\n\nFigures measured on the project machine; each section is written by\nits script in tests/bench/.\n' >"$doc"
	python3 - "$doc" "$2" "$1" <<'PY'
import re, sys
doc, sec, name = sys.argv[1], sys.argv[2], sys.argv[3]
new = open(sec).read().rstrip("\n")
text = open(doc).read()
pat = re.compile(r"<!-- bench:%s -->.*?<!-- /bench:%s -->" % (name, name), re.S)
if pat.search(text):
    text = pat.sub(lambda m: new, text)
else:
    text = text.rstrip("\n") + "\n\n" + new + "\n"
open(doc, "w").write(text)
PY
	echo "# written to $doc" >&2
}

_npm_version() { node -p "require('$NPM_DIR/node_modules/$1/package.json').version" 2>/dev/null; }
_have_bull() {
	[ "$(_npm_version bullmq)" = "$BULLMQ_VERSION" ] && [ "$(_npm_version ioredis)" = "$IOREDIS_VERSION" ]
}

bullmq_ready() {
	BULL_OK=1 BULL_WHY=
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		BULL_OK=0 BULL_WHY="node and npm missing"
	elif ! _have_bull; then
		echo "# installing bullmq@$BULLMQ_VERSION and ioredis@$IOREDIS_VERSION into $NPM_DIR" >&2
		mkdir -p "$NPM_DIR"
		if ! timeout 300 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
			"bullmq@$BULLMQ_VERSION" "ioredis@$IOREDIS_VERSION" >"$T/npm.log" 2>&1 || ! _have_bull; then
			BULL_OK=0 BULL_WHY="cannot install bullmq@$BULLMQ_VERSION, ioredis@$IOREDIS_VERSION from the npm registry"
			cat "$T/npm.log" >&2
		fi
	fi
}

rq_ready() {
	RQ_OK=1 RQ_WHY=
	if ! RQ_VERSION=$(/usr/bin/python3 -c 'import rq; print(rq.__version__)' 2>/dev/null); then
		RQ_OK=0 RQ_WHY="python3-rq not installed (container/deps.sh install test)" RQ_VERSION=-
	fi
}
