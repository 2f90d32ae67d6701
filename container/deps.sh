#!/bin/sh
# deps.sh - the one list of Debian packages wakeq needs, by purpose.
#
#   container/deps.sh list build|worker|api|test|images|all   print names
#   container/deps.sh missing build|worker|api|test|images|all  print those
#                                     not installed (dpkg only, no network)
#   container/deps.sh install build|worker|api|test|images|all install missing
#
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
# Runtime libraries of the images (Debian bookworm sonames).
api="ca-certificates libhiredis0.14 libmicrohttpd12 libcurl4 libjansson4
 libssl3 libpq5"
worker="$api libavformat59 libavcodec59 libavutil57 libswscale6
 libswresample4 libavfilter8"
test="$build redis-server redis-tools postgresql libcmocka-dev clang
 libclang-rt-14-dev curl jq procps ffmpeg wrk hyperfine valgrind
 shellcheck python3-yaml nodejs npm iproute2 iptables"
# Building and running the images offline (container/test-images.sh).
images="podman buildah runc debootstrap catatonit"

pkgs() {
	case "$1" in
	build) echo $build ;;
	api) echo $api ;;
	worker) echo $worker ;;
	test | all) echo $test ;;
	images) echo $images ;;
	*) echo "deps.sh: unknown set '$1' (build, worker, api, test, images, all)" >&2; exit 2 ;;
	esac
}

missing() {
	for p in $(pkgs "$1"); do
		# npm may come with a Node.js from another source (its own npm
		# inside): the command is what the tests need, not the package.
		case "$p" in npm) command -v npm >/dev/null 2>&1 && continue ;; esac
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

case "${1:-}" in
list) pkgs "${2:-all}" | tr ' ' '\n' | sed '/^$/d' ;;
missing) missing "${2:-all}" ;;
install)
	want=$(missing "${2:-all}" | tr '\n' ' ')
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
