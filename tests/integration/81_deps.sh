#!/usr/bin/env bash
# 81_deps.sh - container/deps.sh and the Makefile's use of it, with
# dpkg-query and apt-get replaced by stubs on PATH that keep their state in
# files (nothing is installed, nothing leaves the machine): a machine with
# every package sees no apt-get at all, one missing a package installs it
# without apt-get update, and a fresh machine (no package lists) updates
# first, then installs.
set -u
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/test.sh"
cd "$TOP" || exit 1

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

# The runtime sets follow the Debian release (sonames differ): bookworm
# for the machines, trixie for the images (hiredis with TLS, FFmpeg 7.1).
list_of() { DEBIAN_CODENAME=$1 container/deps.sh list "$2" | tr '\n' ' '; }
for rel in bookworm trixie; do
	for set in api worker; do
		check "deps.sh list $set is not empty ($rel)" \
			sh -c "[ -n \"\$(DEBIAN_CODENAME=$rel container/deps.sh list $set)\" ]"
	done
	case "$(list_of $rel api)" in *libav*) not_ok "$rel api set has no FFmpeg" ;; *) ok "$rel api set has no FFmpeg" ;; esac
done
check "bookworm worker set: hiredis 0.14, FFmpeg 5.1 sonames" \
	contains "$(list_of bookworm worker)" "libhiredis0.14 libmicrohttpd12 libcurl4 "
check "bookworm worker set has libavcodec59" contains "$(list_of bookworm worker)" "libavcodec59 "
check "trixie worker set: hiredis 1.2 (with hiredis_ssl), t64 sonames" \
	contains "$(list_of trixie worker)" "libhiredis1.1.0 libmicrohttpd12t64 libcurl4t64 "
check "trixie worker set has libavcodec61 (FFmpeg 7.1)" contains "$(list_of trixie worker)" "libavcodec61 "
rel=$(. /etc/os-release && echo "$VERSION_CODENAME")
expect_eq "without DEBIAN_CODENAME the machine's release ($rel) is used" \
	"$(list_of "$rel" worker)" "$(container/deps.sh list worker | tr '\n' ' ')"
setup "" lists
out=$(DEBIAN_CODENAME=hamm stubbed container/deps.sh install worker 2>&1)
expect_eq "an unknown release: deps.sh install worker fails (2)" 2 "$?"
check "and says why ($out)" contains "$out" "no worker set for Debian release 'hamm'"
expect_eq "and runs no apt-get" "" "$(apt_log)"
DEBIAN_CODENAME=hamm container/deps.sh list api >/dev/null 2>&1
expect_eq "an unknown release: deps.sh list api fails (2)" 2 "$?"
expect_eq "the build set does not depend on the release" \
	"$(list_of bookworm build)" "$(list_of hamm build)"

# not root: names what is missing and how to install it, installs nothing
setup "jq" lists
printf '#!/bin/sh\necho 1000\n' >"$S/bin/id"
out=$(stubbed container/deps.sh install test 2>&1)
expect_eq "not root: deps.sh install fails (1)" 1 "$?"
check "and names the package ($out)" contains "$out" "missing packages: jq"
expect_eq "without running apt-get" "" "$(apt_log)"
exit 0
