# bench.sh - what the benchmarks in tests/bench/ share. Source after
# servers.sh; log() is the caller's.
#
# BENCH_SECTION=NAME bench_write FILE: FILE replaces the section
# <!-- bench:NAME --> … <!-- /bench:NAME --> of docs/BENCHMARKS.md (or
# is appended to it).
bench_write() {
	local doc=docs/BENCHMARKS.md
	[ -f "$doc" ] || printf '# Benchmarks\n\nFigures measured on the project machine; each section is written by\nits script in tests/bench/.\n' >"$doc"
	python3 - "$doc" "$1" "$BENCH_SECTION" <<'PY'
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
	log "written to $doc (section $BENCH_SECTION)"
}
