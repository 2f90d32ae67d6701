#!/bin/sh
# deps.sh - the one list of Debian packages wakeq needs, by purpose.
#
#   container/deps.sh list build|worker|api|test|images|all   print names
#   container/deps.sh missing build|worker|api|test|images|all  print those
#                                     not installed (dpkg only, no network)
#   container/deps.sh install build|worker|api|test|images|all install missing
#
# The runtime sets (api, worker) name sonames, which differ between Debian
# releases: bookworm's for the machines and local builds (hiredis 0.14, no
# TLS; FFmpeg 5.1), trixie's for the images (hiredis 1.2 with hiredis_ssl;
# FFmpeg 7.1). The release is VERSION_CODENAME of /etc/os-release, or
# DEBIAN_CODENAME when set (to list another release's names).
# Used by the Makefile (make deps, make test, make demo), .ci/run and both
# Dockerfiles, so a package is named in one place only. install does
# nothing when nothing is missing, and runs apt-get update only when the
# package lists cannot serve the install (none yet on a fresh machine or
# image, or too old for the mirror).
set -eu

build="build-essential pkg-config libhiredis-dev libmicrohttpd-dev
 libcurl4-openssl-dev libjansson-dev libssl-dev libpq-dev
 libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
 libswresample-dev libavfilter-dev"
# Runtime libraries of the binaries, by release (see above); tzdata for
# the time zones of cron schedules (internal/cron).
codename=${DEBIAN_CODENAME:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}
case "$codename" in
bookworm)
	api="ca-certificates tzdata libhiredis0.14 libmicrohttpd12 libcurl4 libjansson4
 libssl3 libpq5"
	worker="$api libavformat59 libavcodec59 libavutil57 libswscale6
 libswresample4 libavfilter8" ;;
trixie)
	api="ca-certificates tzdata libhiredis1.1.0 libmicrohttpd12t64 libcurl4t64
 libjansson4 libssl3t64 libpq5"
	worker="$api libavformat61 libavcodec61 libavutil59 libswscale8
 libswresample5 libavfilter10" ;;
*) api='' worker='' ;;
esac
test="$build tzdata redis-server redis-tools postgresql libcmocka-dev clang
 libclang-rt-14-dev curl jq procps ffmpeg wrk hyperfine valgrind
 shellcheck python3 python3-yaml python3-rq nodejs npm tmux zsh chromium prometheus
 iproute2 iptables"
# Building and running the images offline (container/test-images.sh).
images="podman buildah runc debootstrap catatonit"

pkgs() {
	case "$1" in
	build) echo $build ;;
	api | worker)
		if [ -z "$api" ]; then
			echo "deps.sh: no $1 set for Debian release '${codename:-unknown}' (bookworm, trixie; set DEBIAN_CODENAME)" >&2
			exit 2
		fi
		if [ "$1" = api ]; then echo $api; else echo $worker; fi ;;
	test | all) echo $test ;;
	images) echo $images ;;
	*) echo "deps.sh: unknown set '$1' (build, worker, api, test, images, all)" >&2; exit 2 ;;
	esac
}

missing() {
	names=$(pkgs "$1") || exit 2
	for p in $names; do
		# npm may come with a Node.js from another source (its own npm
		# inside): the command is what the tests need, not the package.
		case "$p" in npm) command -v npm >/dev/null 2>&1 && continue ;; esac
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

case "${1:-}" in
list)
	# not in a pipe: a bad set must fail the command
	names=$(pkgs "${2:-all}")
	printf '%s\n' $names ;;
missing) missing "${2:-all}" ;;
install)
	want=$(missing "${2:-all}") || exit 2
	want=$(echo $want)
	[ -z "$want" ] && exit 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: missing packages: $want" >&2
		echo "deps.sh: run as root, or: sudo apt-get install -y $want" >&2
		exit 1
	fi
	echo "deps.sh: installing $want" >&2
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $want >/dev/null 2>&1; then
		apt-get update -qq
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $want >/dev/null
	fi
	;;
*) echo "usage: deps.sh list|missing|install build|worker|api|test|images|all" >&2; exit 2 ;;
esac
