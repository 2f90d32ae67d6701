#!/usr/bin/env bash
# 81_deps.sh - container/deps.sh and the Makefile's use of it, with
# dpkg-query and apt-get replaced by stubs on PATH that keep their state in
# files (nothing is installed, nothing leaves the machine): a machine with
# every package sees no apt-get at all, one missing a package installs it
# without apt-get update, and a fresh machine (no package lists) updates
# first, then installs.
set -u
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/servers.sh"
# shellcheck source=tests/lib/tap.sh
. "$(dirname "$0")/../lib/tap.sh"
cd "$TOP" || exit 1
t_tmpdir

S=$T/stub
mkdir -p "$S/bin"
# dpkg-query -W -f=... PKG: installed unless PKG is listed in $S/missing
cat >"$S/bin/dpkg-query" <<EOF
#!/bin/sh
for p; do :; done
grep -qx "\$p" "$S/missing" 2>/dev/null && exit 1
echo 'install ok installed'
EOF
# apt-get: logs its verb; install fails while there are no lists
# ($S/lists), else marks the packages installed
cat >"$S/bin/apt-get" <<EOF
#!/bin/sh
case "\$1" in
update) echo update >>"$S/apt.log"; touch "$S/lists" ;;
install)
	shift
	echo "install \$*" >>"$S/apt.log"
	[ -e "$S/lists" ] || { echo "E: Unable to locate package" >&2; exit 100; }
	for p; do sed -i "/^\$p\\\$/d" "$S/missing"; done ;;
*) exit 1 ;;
esac
EOF
printf '#!/bin/sh\necho 0\n' >"$S/bin/id"
printf '#!/bin/sh\nexit 0\n' >"$S/bin/npm"
chmod +x "$S/bin/"*

setup() { # setup "PKG..." lists|nolists
	: >"$S/apt.log"
	printf '%s\n' $1 >"$S/missing"
	rm -f "$S/lists"
	[ "$2" = lists ] && touch "$S/lists"
	return 0
}
apt_log() { tr '\n' ';' <"$S/apt.log"; }
stubbed() { PATH=$S/bin:$PATH "$@"; }

# every package there: no apt-get, neither from deps.sh nor from make
setup "" lists
expect_eq "deps.sh missing: nothing" "" "$(stubbed container/deps.sh missing test)"
stubbed make --no-print-directory -s have-test-deps >"$T/make.out" 2>&1
expect_eq "make test's deps step with nothing missing exits 0" 0 "$?"
expect_eq "and runs no apt-get" "" "$(apt_log)"
stubbed container/deps.sh install test >/dev/null 2>&1
expect_eq "deps.sh install with nothing missing runs no apt-get" "" "$(apt_log)"

# one package missing, package lists present: install it, no update
setup "jq" lists
expect_eq "deps.sh missing names it" "jq" "$(stubbed container/deps.sh missing test)"
stubbed make --no-print-directory -s have-test-deps >"$T/make.out" 2>&1
expect_eq "make test's deps step installs it (exit 0)" 0 "$?"
expect_eq "with one apt-get install and no apt-get update" \
	"install -y -qq --no-install-recommends jq;" "$(apt_log)"
expect_eq "after which nothing is missing" "" "$(stubbed container/deps.sh missing test)"

# a fresh machine: no package lists, so the install fails until an update
setup "jq clang" nolists
stubbed make --no-print-directory -s have-test-deps >"$T/make.out" 2>&1
expect_eq "on a fresh machine make test's deps step still installs (exit 0)" 0 "$?"
expect_eq "updating the lists once, then installing" \
	"install -y -qq --no-install-recommends clang jq;update;install -y -qq --no-install-recommends clang jq;" \
	"$(apt_log)"
expect_eq "after which nothing is missing (fresh)" "" "$(stubbed container/deps.sh missing test)"

# not root: names what is missing and how to install it, installs nothing
setup "jq" lists
printf '#!/bin/sh\necho 1000\n' >"$S/bin/id"
out=$(stubbed container/deps.sh install test 2>&1)
expect_eq "not root: deps.sh install fails (1)" 1 "$?"
check "and names the package ($out)" contains "$out" "missing packages: jq"
expect_eq "without running apt-get" "" "$(apt_log)"
exit 0
