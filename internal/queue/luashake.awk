# luashake.awk LIB SCRIPT (both without comment or blank lines): prints
# the top-level statements of LIB that SCRIPT needs, in LIB's order. A
# statement that defines names (local function N, local A, B = ...,
# N = function) is kept when SCRIPT or a statement kept uses one of them
# (any identifier of the same spelling counts: a name in a string keeps a
# statement needlessly, never drops one needed); one defining none is
# always kept. A statement starts at a line with no indent other than
# `end`, `}` or `)`. Why: Lua makes every `local function` of a script
# afresh at each run, so each statement of _lib.lua a script does not use
# is paid at every EVALSHA (docs/QUEUE.md "Engine costs").
function idents(s, set,    a, n, i) {
	gsub(/[^A-Za-z0-9_]/, " ", s)
	n = split(s, a, " ")
	for (i = 1; i <= n; i++)
		if (a[i] ~ /^[A-Za-z_]/)
			set[a[i]] = 1
}
FNR == 1 { file++ }
file == 1 {
	if ($0 !~ /^[ \t]/ && $0 !~ /^(end|[})])/) {
		nc++
		line = $0
		if (match(line, /^local function [A-Za-z_][A-Za-z0-9_]*/))
			defs[nc] = substr(line, 16, RLENGTH - 15)
		else if (match(line, /^local [A-Za-z_][A-Za-z0-9_, ]*/)) {
			d = substr(line, 7, RLENGTH - 6)
			gsub(/[ ,]+/, " ", d)
			defs[nc] = d
		} else if (match(line, /^[A-Za-z_][A-Za-z0-9_]* = function/))
			defs[nc] = substr(line, 1, index(line, " ") - 1)
		else
			defs[nc] = ""
	}
	text[nc] = text[nc] $0 "\n"
	next
}
{ idents($0, need) }
END {
	do {
		more = 0
		for (c = 1; c <= nc; c++) {
			if (keep[c])
				continue
			if (defs[c] == "")
				k = 1
			else {
				k = 0
				n = split(defs[c], a, " ")
				for (i = 1; i <= n; i++)
					if (a[i] in need)
						k = 1
			}
			if (k) {
				keep[c] = 1
				more = 1
				idents(text[c], need)
			}
		}
	} while (more)
	for (c = 1; c <= nc; c++)
		if (keep[c])
			printf "%s", text[c]
}
