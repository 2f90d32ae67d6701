# lib.sh - what the benchmark scripts share. Source it from the top of the
# tree (the scripts cd there).
#
#   bench_write NAME SECTION  prints SECTION, which carries its own
#                             <!-- bench:NAME --> ... <!-- /bench:NAME -->
#                             markers, and puts it into docs/BENCHMARKS.md
#                             in place of the section there, else at the
#                             end; with NOWRITE=1 the doc is left alone

bench_write() {
	local name=$1 doc=docs/BENCHMARKS.md
	printf '%s\n' "$2"
	[ "${NOWRITE:-0}" = 1 ] && return 0
	[ -f "$doc" ] || printf '# Benchmarks\n\nFigures measured on the project machine; each section is written by\nits script in tests/bench/.\n' >"$doc"
	python3 - "$doc" "$name" 3<<<"$2" <<'PY'
import os, re, sys
doc, name = sys.argv[1], sys.argv[2]
new = os.fdopen(3).read().rstrip("\n")
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
