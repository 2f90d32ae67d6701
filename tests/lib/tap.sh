# tap.sh - test lines the runner counts: "ok - NAME" / "not ok - NAME".
# Source it after servers.sh.

_t_failed=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; _t_failed=1; }

# check NAME CMD...: passes when CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# expect_eq NAME WANT GOT
expect_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1 (want '$2', got '$3')"
	fi
}

# Print a diagnostic block (runner shows it on failure).
diag() { sed 's/^/# /' "$@"; }

# contains TEXT SUBSTRING
contains() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }
