#!/usr/bin/env bash
# report.sh FIGURES [DOC] - writes the figures of a chaos run into DOC
# (docs/RELIABILITY.md), replacing what lies between the lines
# "<!-- chaos:figures -->" and "<!-- /chaos:figures -->". FIGURES has one
# JSON object per scenario (chaos_audit in lib.sh appends them to
# $CHAOS_FIGURES). make chaos runs it after the scenarios.
set -eu
cd "$(dirname "$0")/../.."
fig=$1
doc=${2:-docs/RELIABILITY.md}
[ -s "$fig" ] || { echo "report.sh: no figures in '$fig'" >&2; exit 1; }
grep -q '^<!-- chaos:figures -->$' "$doc" && grep -q '^<!-- /chaos:figures -->$' "$doc" ||
	{ echo "report.sh: no chaos:figures markers in '$doc'" >&2; exit 1; }

section=$(mktemp)
trap 'rm -f "$section" "$section.doc"' EXIT
{
	echo "<!-- chaos:figures -->"
	echo "<!-- written by tests/chaos/report.sh from the last make chaos; do not edit by hand -->"
	printf 'Last run: %s, mode %s, commit %s, %s CPUs (%s), kernel %s.\n\n' \
		"$(date -u +%Y-%m-%dT%H:%MZ)" \
		"$(jq -rs 'map(.mode) | unique | join("+")' "$fig")" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$(nproc)" \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(uname -r)"
	echo "| scenario | faults | jobs accepted | executions | lost | stuck | dead unstarted | re-runs (in flight) | re-runs (finished) | refused 503 | half-written | recovery max / median |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	jq -r '"| \(.scenario) | \(.faults | to_entries | map("\(.value) \(.key)") | join(", ")) | \(.jobs) | \(.executions) | \(.lost) | \(.stuck) | \(.dead_unstarted) | \(.reruns_in_flight) | \(.reruns_finished) | \(.refused_503) | \(.half_written) | \(.recovery_max_ms) / \(.recovery_p50_ms) ms |"' "$fig"
	jq -rs '"| **all** | \(map(.faults | add) | add) | \(map(.jobs) | add) | \(map(.executions) | add) | \(map(.lost) | add) | \(map(.stuck) | add) | \(map(.dead_unstarted) | add) | \(map(.reruns_in_flight) | add) | \(map(.reruns_finished) | add) | \(map(.refused_503) | add) | \(map(.half_written) | add) | \(map(.recovery_max_ms) | max) ms |"' "$fig"
	echo
	echo "LEASE $(jq -rs 'map(.lease_ms) | unique | map("\(.) ms") | join(", ")' "$fig"); other figures per scenario:"
	echo
	jq -r '. as $f | ["scenario","mode","lease_ms","jobs","refused_503","faults","executions","lost","stuck","dead_unstarted","reruns_in_flight","reruns_finished","half_written","recovery_max_ms","recovery_p50_ms"] as $std
		| [to_entries[] | select(.key as $k | $std | index($k) | not) | "\(.key) \(.value)"]
		| "- \($f.scenario): " + (. + ["\($f.seconds) s"] | map(select(startswith("seconds ") | not)) | join(", "))' "$fig"
	echo "<!-- /chaos:figures -->"
} >"$section"

awk -v S="$section" '
	$0 == "<!-- chaos:figures -->" { while ((getline l < S) > 0) print l; skip = 1; next }
	$0 == "<!-- /chaos:figures -->" { skip = 0; next }
	!skip' "$doc" >"$section.doc"
cat "$section.doc" >"$doc"
echo "report.sh: figures of $(wc -l <"$fig") scenarios written to $doc"
